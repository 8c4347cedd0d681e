"""lantern from Python through ctypes: no build step, only liblantern_ffi.so.

    import lantern
    engine = lantern.Engine("model.gguf", lib="target/release/liblantern_ffi.so")
    session = engine.session(threads=2)
    reply = session.chat([("user", "What is the capital of France?")],
                         on_piece=lambda piece: print(piece, end="", flush=True))

The library comes from the `lib` argument, else $LANTERN_LIB. Every failing call raises
LanternError, carrying the status name and lantern_last_error()'s message. The calls release
the GIL while they run, so Session.cancel() works from another Python thread.
"""

from __future__ import annotations

import ctypes
import enum
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int,
                    c_size_t, c_uint32, c_uint64, c_void_p)
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence, Tuple, Union

ABI_VERSION = 1


class Status(enum.IntEnum):
    OK = 0
    NULL_ARGUMENT = 1
    INVALID_UTF8 = 2
    INVALID_ARGUMENT = 3
    INVALID_HANDLE = 4
    IO = 5
    MODEL = 6
    BUDGET = 7
    PROMPT_TOO_LONG = 8
    TEMPLATE = 9
    BUFFER_TOO_SMALL = 10
    BUSY = 11
    INTERNAL = 12


class StopReason(enum.IntEnum):
    NONE = 0
    END_OF_TEXT = 1
    MAX_TOKENS = 2
    STOP_STRING = 3
    CANCELLED = 4
    CONTEXT_FULL = 5


class LanternError(Exception):
    """A call that did not return LANTERN_OK: `status`, its C name, and the library's message."""

    def __init__(self, status: int, name: str, message: str, call: str):
        try:
            self.status: Union[Status, int] = Status(status)
        except ValueError:
            self.status = status
        self.name = name
        self.message = message
        self.call = call
        # The message names the function already.
        super().__init__(f"{name}: {message}")


class PromptTooLong(LanternError):
    """LANTERN_PROMPT_TOO_LONG: the conversation no longer fits the session's context."""


# ---- the C structs (include/lantern.h) ---------------------------------------------------

class _EngineOptions(Structure):
    _fields_ = [("budget", c_char_p), ("storage", c_char_p), ("depth", c_uint32)]


class _SessionOptions(Structure):
    _fields_ = [("threads", c_uint32), ("ctx_len", c_uint32)]


class _GenerateOptions(Structure):
    _fields_ = [
        ("max_tokens", c_uint32),
        ("temperature", c_float),
        ("top_k", c_uint32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repeat_penalty", c_float),
        ("seed", c_uint64),
        ("stop", POINTER(c_char_p)),
        ("n_stop", c_size_t),
    ]


class _Message(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


class _Stats(Structure):
    _fields_ = [
        ("load_seconds", c_double),
        ("prompt_tokens", c_uint32),
        ("prompt_tokens_per_second", c_double),
        ("generated_tokens", c_uint32),
        ("generate_tokens_per_second", c_double),
        ("bytes_streamed", c_uint64),
        ("peak_resident_bytes", c_uint64),
        ("stop_reason", c_int),
        ("context_used", c_uint32),
        ("context_size", c_uint32),
    ]


_PIECE_FN = CFUNCTYPE(c_int, POINTER(c_char), c_size_t, c_void_p)


@dataclass(frozen=True)
class Stats:
    load_seconds: float
    prompt_tokens: int
    prompt_tokens_per_second: float
    generated_tokens: int
    generate_tokens_per_second: float
    bytes_streamed: int
    peak_resident_bytes: int
    stop_reason: StopReason
    context_used: int
    context_size: int


class _Library:
    """liblantern_ffi loaded once per path, with every function's signature declared."""

    _loaded: dict = {}

    @classmethod
    def get(cls, path: Optional[str]) -> "_Library":
        path = path or os.environ.get("LANTERN_LIB")
        if not path:
            raise FileNotFoundError("no library: pass lib=... or set LANTERN_LIB to liblantern_ffi.so")
        path = os.path.abspath(path)
        if path not in cls._loaded:
            cls._loaded[path] = cls(path)
        return cls._loaded[path]

    def __init__(self, path: str):
        c = ctypes.CDLL(path)
        st = c_int  # lantern_status
        sigs = {
            "lantern_abi_version": (c_uint32, []),
            "lantern_version": (c_char_p, []),
            "lantern_last_error": (c_char_p, []),
            "lantern_status_name": (c_char_p, [c_int]),
            "lantern_engine_options_default": (None, [POINTER(_EngineOptions)]),
            "lantern_session_options_default": (None, [POINTER(_SessionOptions)]),
            "lantern_generate_options_default": (None, [POINTER(_GenerateOptions)]),
            "lantern_engine_load": (st, [c_char_p, POINTER(_EngineOptions), POINTER(c_void_p)]),
            "lantern_engine_free": (None, [c_void_p]),
            "lantern_tokenize": (st, [c_void_p, c_char_p, c_int, POINTER(c_uint32), c_size_t,
                                      POINTER(c_size_t)]),
            "lantern_detokenize": (st, [c_void_p, POINTER(c_uint32), c_size_t, c_char_p, c_size_t,
                                        POINTER(c_size_t)]),
            "lantern_session_new": (st, [c_void_p, POINTER(_SessionOptions), POINTER(c_void_p)]),
            "lantern_session_free": (None, [c_void_p]),
            "lantern_session_reset": (st, [c_void_p]),
            "lantern_session_set_adapter": (st, [c_void_p, c_char_p, ctypes.c_float]),
            "lantern_session_cancel": (st, [c_void_p]),
            "lantern_session_stats": (st, [c_void_p, POINTER(_Stats)]),
            "lantern_chat": (st, [c_void_p, POINTER(_Message), c_size_t, POINTER(_GenerateOptions),
                                  _PIECE_FN, c_void_p]),
            "lantern_complete": (st, [c_void_p, c_char_p, POINTER(_GenerateOptions), _PIECE_FN,
                                      c_void_p]),
        }
        for name, (restype, argtypes) in sigs.items():
            f = getattr(c, name)
            f.restype = restype
            f.argtypes = argtypes
        self.c = c
        self.path = path
        abi = c.lantern_abi_version()
        if abi != ABI_VERSION:
            raise RuntimeError(f"{path} has lantern ABI {abi}; this module speaks {ABI_VERSION}")

    def check(self, status: int, call: str) -> None:
        """Raises LanternError for anything but LANTERN_OK; reads the message on this thread."""
        if status == Status.OK:
            return
        message = self.c.lantern_last_error().decode("utf-8", "replace")
        name = (self.c.lantern_status_name(status) or b"LANTERN_?").decode()
        kind = PromptTooLong if status == Status.PROMPT_TOO_LONG else LanternError
        raise kind(status, name, message, call)


def version(lib: Optional[str] = None) -> str:
    """The library's crate version."""
    return _Library.get(lib).c.lantern_version().decode()


Messages = Iterable[Union[Tuple[str, str], Mapping[str, str]]]


class _Handle:
    """A handle of the library, freed by `close`, by leaving a `with` block or when collected.
    Subclasses set `_handle` and `_lib`, and name their kind and the function that frees it."""
    _kind = ""
    _free = ""

    def _live(self) -> int:
        if not getattr(self, "_handle", None):
            raise ValueError(f"the {self._kind} is closed")
        return self._handle

    def close(self) -> None:
        """Frees the handle (an engine's sessions stay usable: they keep the model alive)."""
        if getattr(self, "_handle", None):
            getattr(self._lib.c, self._free)(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class Engine(_Handle):
    """A loaded model (GGUF, or a .lantern container streamed within `budget`)."""
    _kind = "engine"
    _free = "lantern_engine_free"

    def __init__(self, path: str, *, budget: Optional[str] = None, storage: Optional[str] = None,
                 depth: int = 0, lib: Optional[str] = None):
        self._lib = _Library.get(lib)
        options = _EngineOptions()
        self._lib.c.lantern_engine_options_default(ctypes.byref(options))
        options.budget = budget.encode() if budget is not None else None
        options.storage = storage.encode() if storage is not None else None
        options.depth = depth
        handle = c_void_p()
        self._lib.check(self._lib.c.lantern_engine_load(os.fsencode(path), ctypes.byref(options),
                                                        ctypes.byref(handle)),
                        "lantern_engine_load")
        self._handle: Optional[int] = handle.value

    def tokenize(self, text: str, add_special: bool = True) -> list:
        needed = c_size_t()
        raw = text.encode()
        capacity = len(raw) + 8  # a token covers at least one byte, plus the specials
        while True:
            buf = (c_uint32 * capacity)()
            status = self._lib.c.lantern_tokenize(self._live(), raw, int(add_special), buf,
                                                  capacity, ctypes.byref(needed))
            if status == Status.BUFFER_TOO_SMALL:
                capacity = needed.value
                continue
            self._lib.check(status, "lantern_tokenize")
            return list(buf[:needed.value])

    def detokenize(self, tokens: Sequence[int]) -> str:
        ids = (c_uint32 * len(tokens))(*tokens)
        needed = c_size_t()
        capacity = 16 * len(tokens) + 1
        while True:
            buf = ctypes.create_string_buffer(capacity)
            status = self._lib.c.lantern_detokenize(self._live(), ids, len(tokens), buf, capacity,
                                                    ctypes.byref(needed))
            if status == Status.BUFFER_TOO_SMALL:
                capacity = needed.value + 1  # the count excludes the NUL
                continue
            self._lib.check(status, "lantern_detokenize")
            return buf.raw[:needed.value].decode()

    def session(self, threads: int = 0, ctx_len: int = 0) -> "Session":
        return Session(self, threads, ctx_len)


class Session(_Handle):
    """A conversation's KV cache and threads; use from one thread at a time (cancel aside)."""
    _kind = "session"
    _free = "lantern_session_free"

    def __init__(self, engine: Engine, threads: int = 0, ctx_len: int = 0):
        self._lib = engine._lib
        options = _SessionOptions()
        self._lib.c.lantern_session_options_default(ctypes.byref(options))
        options.threads = threads
        options.ctx_len = ctx_len
        handle = c_void_p()
        self._lib.check(self._lib.c.lantern_session_new(engine._live(), ctypes.byref(options),
                                                        ctypes.byref(handle)),
                        "lantern_session_new")
        self._handle: Optional[int] = handle.value

    def reset(self) -> None:
        self._lib.check(self._lib.c.lantern_session_reset(self._live()), "lantern_session_reset")

    def set_adapter(self, path: Optional[str], scale: float = 1.0) -> None:
        """Applies a LoRA adapter file (llama.cpp's GGUF format) to this session alone, in
        place of any it had; None: the base model again. The conversation is forgotten."""
        raw = os.fsencode(path) if path is not None else None
        self._lib.check(self._lib.c.lantern_session_set_adapter(self._live(), raw, scale),
                        "lantern_session_set_adapter")

    def cancel(self) -> None:
        """Stops the generation running in another thread (it ends with StopReason.CANCELLED)."""
        self._lib.check(self._lib.c.lantern_session_cancel(self._live()), "lantern_session_cancel")

    def stats(self) -> Stats:
        out = _Stats()
        self._lib.check(self._lib.c.lantern_session_stats(self._live(), ctypes.byref(out)),
                        "lantern_session_stats")
        values = {name: getattr(out, name) for name, _ in _Stats._fields_}
        values["stop_reason"] = StopReason(values["stop_reason"])
        return Stats(**values)

    def chat(self, messages: Messages, *, on_piece: Optional[Callable[[str], object]] = None,
             **options) -> str:
        """Replies to the whole conversation (role, content pairs or {"role", "content"} dicts);
        returns the reply. on_piece(text) sees each piece; a true return value stops the reply.
        Options: max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, seed, stop."""
        pairs = [(m["role"], m["content"]) if isinstance(m, Mapping) else tuple(m)
                 for m in messages]
        array = (_Message * len(pairs))(*[_Message(r.encode(), c.encode()) for r, c in pairs])
        return self._run("lantern_chat", (array, len(pairs)), on_piece, options)

    def complete(self, prompt: str, *, on_piece: Optional[Callable[[str], object]] = None,
                 **options) -> str:
        """Continues `prompt` as raw text (no chat template); returns the generated text."""
        return self._run("lantern_complete", (prompt.encode(),), on_piece, options)

    def _run(self, call: str, args: tuple, on_piece, options: dict) -> str:
        gen = _GenerateOptions()
        self._lib.c.lantern_generate_options_default(ctypes.byref(gen))
        stops = options.pop("stop", ())
        for key, value in options.items():
            if key not in dict(_GenerateOptions._fields_) or key in ("stop", "n_stop"):
                raise TypeError(f"unknown generation option {key!r}")
            setattr(gen, key, value)
        stop_array = (c_char_p * len(stops))(*[s.encode() for s in stops])
        gen.stop = ctypes.cast(stop_array, POINTER(c_char_p)) if stops else None
        gen.n_stop = len(stops)

        pieces: list = []
        failure: list = []

        def piece(ptr, length, _user):
            try:
                text = ctypes.string_at(ptr, length).decode()
                pieces.append(text)
                return 1 if on_piece is not None and on_piece(text) else 0
            except BaseException as e:  # an exception must not unwind through C
                failure.append(e)
                return 1

        callback = _PIECE_FN(piece)  # kept referenced for the call's whole duration
        status = getattr(self._lib.c, call)(self._live(), *args, ctypes.byref(gen), callback, None)
        if failure:
            raise failure[0]
        self._lib.check(status, call)
        return "".join(pieces)
