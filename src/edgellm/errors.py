"""The one error type users see: a bad input, reported as one line."""


class ConfigError(Exception):
    """Bad user input. The message names the file and the key or line at fault.

    The CLI prints ``error: <message>`` and exits with status 2; nothing else is
    written, so a bad job never touches rank files.
    """

    def __init__(self, source, message):
        self.source = str(source)
        super().__init__(f"{self.source}: {message}")
