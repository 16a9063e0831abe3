"""Keeping a training stage only when it does not make the model worse on the validation photos.

Seed 002's stages (FEA -> CFL -> cRT) each assume the previous one left something to improve; on a
small collection a stage can instead undo the previous one (issue 12: cRT took a model from 0.74 to
chance). Every stage is therefore judged on the validation photos (mAcc, each mineral counting the
same): a stage whose mAcc is lower than the best so far is not kept - the caller restores the
previous stage's weights - and the run says so in its log, run.json and model.json.
"""

from __future__ import annotations

from core.progress import Progress


class StageGuard:
    """Remembers the best validation mAcc so far and which stage gave it."""

    def __init__(self, progress: Progress, has_validation: bool = True) -> None:
        self.progress = progress
        self.has_validation = has_validation
        self.best: float | None = None
        self.kept: str | None = None
        self.decisions: list[dict] = []
        if not has_validation:
            progress.warn("no validation photos: every training stage is kept unchecked "
                          "(add photos so each mineral has at least 3)")

    def judge(self, stage: str, val_macc: float | None) -> bool:
        """True to keep ``stage``'s result, False to go back to the stage kept before."""
        if not self.has_validation or val_macc is None:
            self.decisions.append({"stage": stage, "val_mAcc": None, "kept": True})
            self.kept = stage
            return True
        keep = self.best is None or val_macc >= self.best
        self.decisions.append({"stage": stage, "val_mAcc": round(val_macc, 4), "kept": keep})
        if keep:
            self.progress.log(f"{stage.upper()}: validation mAcc {val_macc:.3f} - kept")
            self.best, self.kept = val_macc, stage
        else:
            self.progress.warn(f"{stage.upper()} lowered the validation mAcc from {self.best:.3f} to {val_macc:.3f}: "
                               f"keeping the model of stage {self.kept.upper()}")
        return keep
