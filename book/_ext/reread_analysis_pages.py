"""Re-read (and so re-execute) every analysis page on every build.

The analysis pages compute their tables from files Sphinx does not track — the run records in
``runs/`` and the Grad-CAM metrics in ``gradcam/`` — so Sphinx's incremental build would keep
showing the numbers of the previous build after new runs land. The run notebooks themselves
(``runs/<profile>/*``) are rendered from papermill's outputs and are left to the normal rules.
"""


def _outdated(app, env, added, changed, removed):
    return [doc for doc in env.found_docs if not doc.startswith("runs/") and doc not in added | changed]


def setup(app):
    app.connect("env-get-outdated", _outdated)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
