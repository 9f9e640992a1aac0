"""Plugin startup keeps torch off the GUI thread and loads no training module at all.

In a fresh process (the test session has long imported torch), the script
imports napari_medseg and every module the napari.yaml commands name, makes a
viewer, docks every widget the manifest contributes and processes events. A
``sys.meta_path`` hook records, for each watched package, the thread that
first imported it and the plugin or engine frames that asked, so a failure
names the import chain. The model names the Predict and Fine-tune forms offer
are read in a worker thread (:mod:`napari_medseg._model_choices`): torch may
load there, never on the GUI thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TRAINING = ("medseg.training", "medseg.qc.oof", "medseg.qc.ranking")  # never loaded at startup
TORCH = ("torch", "segmentation_models_pytorch", "medseg.inference", "medseg.models")  # never on the GUI thread

SCRIPT = r"""
import importlib, json, sys, threading, traceback
WATCHED = %r
first = {}  # (package, on the GUI thread) -> the import chain


class Recorder:
    def find_spec(self, name, path=None, target=None):
        for w in WATCHED:
            main = threading.current_thread() is threading.main_thread()
            if (name == w or name.startswith(w + ".")) and (w, main) not in first:
                frames = [f"{f.filename}:{f.lineno} {f.name}" for f in traceback.extract_stack()[:-1]
                          if "importlib" not in f.filename]
                first[(w, main)] = [f for f in frames if "medseg" in f][-8:] or frames[-8:]
                # printed at once: a crash (triton loaded after the GL context) still shows what came first
                print("IMPORT " + json.dumps([w, main, first[(w, main)]]), flush=True)
        return None


sys.meta_path.insert(0, Recorder())
import napari_medseg
import napari
from npe2 import PluginManager
from qtpy.QtWidgets import QApplication

viewer = napari.Viewer(show=False)  # discovers the plugins
manifest = PluginManager.instance().get_manifest("napari-medseg")
for command in manifest.contributions.commands:  # readers, writers, sample data, widgets
    importlib.import_module(command.python_name.split(":")[0])
docked = []
for contribution in manifest.contributions.widgets:
    _, widget = viewer.window.add_plugin_dock_widget("napari-medseg", contribution.display_name)
    docked.append(type(widget).__name__)
for _ in range(50):
    QApplication.processEvents()
from napari._qt.qthreading import wait_for_workers_to_quit

wait_for_workers_to_quit(240_000)  # as napari does when it quits: the model names' worker finishes
QApplication.processEvents()
viewer.close()
print("DOCKED " + json.dumps(docked))
"""


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    imported = "\n".join(line for line in out.stdout.splitlines() if line.startswith("IMPORT"))
    assert out.returncode == 0, f"exit status {out.returncode}; imports so far:\n{imported}\n{out.stderr[-3000:]}"
    return out.stdout


def test_startup_imports_no_training_module_and_no_torch_on_the_gui_thread():
    stdout = _run(SCRIPT % (TRAINING + TORCH,))
    docked = json.loads(stdout.split("DOCKED ", 1)[1])
    assert len(docked) == 8, docked  # every widget of the manifest was built
    imports = {}
    for line in stdout.splitlines():
        if line.startswith("IMPORT "):
            w, main, chain = json.loads(line[len("IMPORT ") :])
            imports[(w, main)] = chain

    def chain(key) -> str:
        return "\n    ".join(imports[key])

    loaded = [(w, main) for (w, main) in imports if w in TRAINING]
    assert not loaded, "startup loaded training modules:\n" + "\n".join(
        f"  {w} ({'GUI thread' if main else 'worker'}) from\n    {chain((w, main))}" for w, main in loaded
    )
    on_gui = [w for w in TORCH if (w, True) in imports]
    assert not on_gui, "startup imported on the GUI thread:\n" + "\n".join(
        f"  {w} from\n    {chain((w, True))}" for w in on_gui
    )


def test_the_job_protocol_imports_no_torch():
    stdout = _run(
        "import sys, medseg.jobs; print(sorted(m for m in ('torch', 'medseg.inference') if m in sys.modules))"
    )
    assert stdout.strip() == "[]"
