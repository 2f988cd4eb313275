"""maia's own error types. Everything a user can cause ends in one of these, with a one-line message."""


class MaiaError(Exception):
    """Base class: the CLI and the app print ``str(err)`` and carry on; anything else is a bug."""


class InputError(MaiaError, ValueError):
    """A file or argument the user supplied cannot be used (not MIDI, corrupt, empty, too large...)."""


class ServerError(MaiaError):
    """The server cannot do its part (its disk is full or unwritable); the request fails, the server serves on."""


class GalleryError(MaiaError):
    """The gallery's database cannot be used (corrupt, unreadable, or newer than this maia); the playground
    still composes, without the gallery."""
