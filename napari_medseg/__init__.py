"""napari plugin of napari-medseg: a thin layer of readers, samples and widgets over the medseg engine.

Importing it loads no torch (see tests/test_plugin_startup_imports.py); the plugin's code paths that need
the engine's torch side load it through :func:`napari_medseg._torch_guard.load_torch`, which keeps triton
out of the viewer process.
"""
