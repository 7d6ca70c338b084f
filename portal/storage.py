"""The static files storage used with DEBUG off."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ForgivingManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Whitenoise's compressed, hashed storage that still renders pages before ``collectstatic``.

    With a manifest (``STATIC_ROOT/staticfiles.json``) it behaves as whitenoise's: hashed names,
    far-future caching. Without one, where Django would raise (a 500 on every page), a static
    URL keeps its plain name; ``WHITENOISE_USE_FINDERS`` (set in the settings while the manifest
    is missing) then serves the file from the source folders. A file missing from a manifest
    that exists is still an error.
    """

    manifest_strict = False

    def stored_name(self, name: str) -> str:
        try:
            return super().stored_name(name)
        except ValueError:
            if self.manifest_storage.exists(self.manifest_name):
                raise
            return name
