"""Never imported by this studio version (the manifest asks for >=99)."""

raise RuntimeError("distill_newer_studio.future_format must never be imported by an older studio")
