"""The plugin object QGIS loads: toolbar, menu, Processing provider, settings dialog.

Every button opens a Processing algorithm's dialog, so the toolbar, the
Processing Toolbox, batch mode, models and ``qgis_process`` all run the same
code.
"""

from __future__ import annotations

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt import sip
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction, QMenu

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
                             f"GeoAnomaly: {algorithm.displayName()}",
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
        if self.mineral_dock is not None:
            self.mineral_dock.stop_engine()  # deleteLater() sends no close event
            self.iface.removeDockWidget(self.mineral_dock)
            self.mineral_dock.deleteLater()
            self.mineral_dock = None
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
        # A closed dialog is deleted by Qt (its C++ side goes first): ask sip before touching it.
        self._dialogs = [d for d in self._dialogs if not sip.isdeleted(d) and d.isVisible()] + [dialog]
        dialog.show()
        dialog.raise_()

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
