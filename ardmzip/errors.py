"""Typed exceptions of the API; the CLI turns each into a one-line message and exit status 1."""


class ArdmError(Exception):
    """Base class of every error ardmzip reports to a user."""


class FormatError(ArdmError):
    """The bytes are not a valid .ardm file (bad magic, unsupported version, reserved bits, truncated)."""


class NotArdmError(FormatError):
    """The input does not start with the .ardm magic number."""


class UnsupportedVersionError(FormatError):
    """The file's format version is newer (or older) than this release can read."""


class TruncatedError(FormatError):
    """The file ends before the lengths in its header say it should."""


class CorruptError(FormatError):
    """A header or payload check failed: the file was damaged after it was written."""


class ChecksumMismatchError(ArdmError):
    """The decoded samples do not match the checksum of the original stored in the file."""


class ModelError(ArdmError):
    """Unknown model id, a weights file whose SHA-256 differs from the manifest, or a model mismatch."""


class UnsupportedInputError(ArdmError):
    """The input file or array is of a kind ardmzip cannot code (yet): the message says what would work."""
