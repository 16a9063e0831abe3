"""The plugin object QGIS loads: toolbar, menu, Processing provider, settings dialog.

Every button opens a Processing algorithm's dialog, so the toolbar, the
Processing Toolbox, batch mode, models and ``qgis_process`` all run the same
code.
"""

from __future__ import annotations

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt import sip
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QMenu, QMessageBox

from .processing.base import ICONS_DIR
from .processing.provider import ALGORITHMS, GeoAnomalyProvider

MENU_TITLE = "&GeoAnomaly"
EXPORT_CURRENT_RUN = "Export prospectivity map (current run)"
MINERAL_DOCK = "Mineral identification"


class GeoAnomalyPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: GeoAnomalyProvider | None = None
        self.toolbar = None
        self.menu: QMenu | None = None
        self.actions: list[QAction] = []
        self._dialogs: list = []  # open algorithm dialogs (non-modal) kept alive here
        self.options_factory = None
        self.mineral_dock = None
        self.results_dock = None

    # Called by QGIS (and by qgis_process, which has no GUI) for hasProcessingProvider=yes.
    def initProcessing(self) -> None:  # noqa: N802 - QGIS API name
        if self.provider is None:
            self.provider = GeoAnomalyProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802
        self.initProcessing()
        main_window = self.iface.mainWindow()
        self.toolbar = self.iface.addToolBar("GeoAnomaly")
        self.toolbar.setObjectName("GeoAnomalyToolbar")
        self.menu = QMenu(MENU_TITLE, main_window)
        self.menu.setObjectName("GeoAnomalyMenu")
        for algorithm_class in ALGORITHMS:
            # Through the QGIS API (not class attributes): any QgsProcessingAlgorithm can be listed here.
            try:
                algorithm = algorithm_class()
                algorithm.name(), algorithm.displayName(), algorithm.icon()
            except Exception as exc:  # noqa: BLE001 - one broken algorithm must not take the plugin down
                QgsMessageLog.logMessage(f"{algorithm_class.__name__}: {exc}", "GeoAnomaly", Qgis.Warning)
                continue
            self._add_action(algorithm.icon(), algorithm.displayName(), algorithm.name(),
                             f"{algorithm.displayName()}: {algorithm.shortDescription()}"
                             if algorithm.shortDescription() else f"GeoAnomaly: {algorithm.displayName()}",
                             lambda _checked=False, name=algorithm.name(): self.open_algorithm(name))
        # One click: the map of the current prospectivity run (geoanomaly_qgis/current_run.py).
        self._add_action(QIcon(str(ICONS_DIR / "export_map.svg")), EXPORT_CURRENT_RUN, "export_current_run",
                         "GeoAnomaly: export the PDF and PNG map of the current prospectivity run into its folder",
                         lambda _checked=False: self.export_current_run())
        # The mineral identification side panel (geoanomaly_qgis/minerals_dock.py), made on first use.
        self._add_action(QIcon(str(ICONS_DIR / "minerals.svg")), MINERAL_DOCK, "mineral_identification",
                         "GeoAnomaly: identify a mineral from a specimen photo, or train a model on your photos",
                         lambda _checked=False: self.show_mineral_dock())
        self.menu.addSeparator()
        self._add_action(QIcon(str(ICONS_DIR / "settings.svg")), "Settings…", "settings",
                         "GeoAnomaly: engine interpreter, default device, Check engine",
                         lambda _checked=False: self.open_settings())
        from .settings import GeoAnomalyOptionsFactory

        self.options_factory = GeoAnomalyOptionsFactory()
        self.iface.registerOptionsWidgetFactory(self.options_factory)
        menu_bar = main_window.menuBar()
        help_menu = self.iface.helpMenu()
        menu_bar.insertMenu(help_menu.menuAction() if help_menu else None, self.menu)

    def _add_action(self, icon: QIcon, text: str, name: str, tooltip: str, slot) -> QAction:
        """One button on the GeoAnomaly toolbar and the same entry in its menu."""
        action = QAction(icon, text, self.iface.mainWindow())
        action.setObjectName(f"geoanomaly_{name}")
        action.setToolTip(tooltip)
        action.triggered.connect(slot)
        self.toolbar.addAction(action)
        self.menu.addAction(action)
        self.actions.append(action)
        return action

    def unload(self) -> None:
        if self.results_dock is not None and not sip.isdeleted(self.results_dock):
            self.iface.removeDockWidget(self.results_dock)
            self.results_dock.deleteLater()
        self.results_dock = None
        if self.mineral_dock is not None:
            self.mineral_dock.stop_engine()  # deleteLater() sends no close event
            self.iface.removeDockWidget(self.mineral_dock)
            self.mineral_dock.deleteLater()
            self.mineral_dock = None
        self.results_dock = None
        if self.options_factory is not None:
            self.iface.unregisterOptionsWidgetFactory(self.options_factory)
            self.options_factory = None
        for action in self.actions:
            if self.toolbar is not None:
                self.toolbar.removeAction(action)
            action.deleteLater()
        self.actions = []
        if self.menu is not None:
            self.menu.menuAction().setVisible(False)
            self.iface.mainWindow().menuBar().removeAction(self.menu.menuAction())
            self.menu.deleteLater()
            self.menu = None
        if self.toolbar is not None:
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None

    def open_algorithm(self, name: str) -> None:
        """The algorithm's Processing dialog, non-modal like the toolbox's."""
        import processing  # QGIS's Processing plugin, loaded by now

        dialog = processing.createAlgorithmDialog(f"geoanomaly:{name}")
        if dialog is None:
            return
        dialog.algorithmFinished.connect(
            lambda ok, results, dialog=dialog: self.after_run(dialog, f"geoanomaly:{name}", ok, results))
        # A closed dialog is deleted by Qt (its C++ side goes first): ask sip before touching it.
        self._dialogs = [d for d in self._dialogs if not sip.isdeleted(d) and d.isVisible()] + [dialog]
        dialog.show()
        dialog.raise_()

    def after_run(self, dialog, algorithm_id: str, ok: bool, results: dict) -> None:
        """A dialog's run ended: its results page in the GeoAnomaly results panel, or the engine's error."""
        page = (results or {}).get("RESULTS_PAGE") if ok else None
        if page:
            self.show_results_page(str(page))
        self.report_engine_failure(dialog, algorithm_id, ok)

    def show_results_page(self, page: str):
        """The run's results page (success-rate curve, figures) in a panel on the right."""
        from qgis.PyQt.QtCore import Qt, QUrl
        from qgis.PyQt.QtWidgets import QDockWidget, QTextBrowser

        if self.results_dock is None or sip.isdeleted(self.results_dock):
            self.results_dock = QDockWidget("GeoAnomaly results", self.iface.mainWindow())
            self.results_dock.setObjectName("GeoAnomalyResultsDock")
            browser = QTextBrowser(self.results_dock)
            browser.setObjectName("GeoAnomalyResultsPage")
            browser.setOpenExternalLinks(True)
            browser.setMinimumSize(440, 460)  # the curve readable without scrolling sideways
            self.results_dock.setWidget(browser)
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.results_dock)
            # One tab with Processing's Results Viewer (which lists the same page): the curve gets the height.
            viewer = next((dock for dock in self.iface.mainWindow().findChildren(QDockWidget)
                           if type(dock).__name__ == "ResultsDock"), None)
            if viewer is not None and self.iface.mainWindow().dockWidgetArea(viewer) == Qt.RightDockWidgetArea:
                self.iface.mainWindow().tabifyDockWidget(viewer, self.results_dock)
        browser = self.results_dock.widget()
        browser.clearHistory()
        browser.setSource(QUrl.fromLocalFile(page))
        browser.reload()
        self.results_dock.show()
        self.results_dock.raise_()
        return self.results_dock

    def report_engine_failure(self, dialog, algorithm_id: str, ok: bool) -> QMessageBox | None:
        """After a failed run: a dialog with the engine's one-line message, and the run's log under Details."""
        from .processing.base import ENGINE_FAILURES

        message = ENGINE_FAILURES.pop(algorithm_id, None)
        if ok or message is None or sip.isdeleted(dialog):  # a success, a Cancel, or a check that stopped it
            return None
        from qgis.PyQt.QtWidgets import QTextEdit

        log = dialog.findChild(QTextEdit, "txtLog")
        box = QMessageBox(QMessageBox.Warning, "GeoAnomaly: the run stopped",
                          message[:1].upper() + message[1:], QMessageBox.Ok, dialog)
        box.setObjectName("GeoAnomalyEngineError")
        box.setInformativeText("Nothing was written to the output folder. 'Show Details' has the run's log.")
        box.setDetailedText(log.toPlainText() if log is not None else message)
        box.setModal(False)
        box.show()
        return box

    def export_current_run(self) -> None:
        """One click: the current prospectivity run's map as PDF and PNG, reported in the message bar."""
        from .current_run import export_current_run

        export_current_run(self.iface)

    def show_mineral_dock(self) -> None:
        """Show (creating once) the Mineral identification dock on the right."""
        if self.mineral_dock is None:
            from qgis.PyQt.QtCore import Qt

            from .minerals_dock import MineralDock

            self.mineral_dock = MineralDock(self.iface.mainWindow())
            self.iface.addDockWidget(Qt.RightDockWidgetArea, self.mineral_dock)
        self.mineral_dock.show()
        self.mineral_dock.raise_()

    def open_settings(self) -> None:
        from .settings import SettingsDialog

        SettingsDialog(self.iface.mainWindow()).exec_()
