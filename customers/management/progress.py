"""A one-line progress display on a terminal, redrawn in place (shared by the bulk commands)."""

from django.core.management.base import OutputWrapper


class TerminalLine:
    def __init__(self, *, output: OutputWrapper):
        self.output = output
        self.drawn = False

    def draw(self, text: str) -> None:
        # \r: back to the line's start; \x1b[K: clear what the last, longer text left.
        # Plain style: stderr's default style is the error colour.
        self.output.write(f"\r{text}\x1b[K", style_func=lambda line: line, ending="")
        self.output.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.output.write("", style_func=lambda line: line)  # end the line
