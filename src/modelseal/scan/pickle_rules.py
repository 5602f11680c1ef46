"""What pickle imports mean: the allow-list, the deny-lists and the classifier.

Allow-list first: a global is ``safe`` only when its exact (module, name) is listed here, after
alias normalisation (``__builtin__`` → ``builtins``, ``posix``/``nt`` → ``os``, ``numpy._core`` →
``numpy.core``…). The deny-lists only decide between ``dangerous`` and ``suspicious`` for
everything else, checking the module, every prefix of the dotted path and every component of a
dotted name (``pathlib`` + ``os.system`` reaches ``os.system``). Sources: picklescan's and
modelscan's deny-lists, fickling's unsafe-import set and ML allow-list, the GHSA advisories in
``../shared/research/scanning.md`` §2.1, and what torch, numpy and joblib write.
"""

from __future__ import annotations

from functools import lru_cache

from modelseal.scan.model import Verdict

MODULE_ALIASES = {
    "__builtin__": "builtins",
    "posix": "os",
    "nt": "os",
    "_io": "io",
    "_pickle": "pickle",
    "cPickle": "pickle",
    "_operator": "operator",
    "_functools": "functools",
    "_thread": "threading",
    "_posixsubprocess": "subprocess",
    "numpy._core": "numpy.core",
    "copy_reg": "copyreg",
}

_TORCH_STORAGES = [
    f"{kind}Storage"
    for kind in (
        "Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
        "ComplexFloat", "ComplexDouble", "QUInt8", "QInt8", "QInt32", "QUInt4x2", "QUInt2x4",
        "Untyped", "Typed",
    )
]  # fmt: skip
_TORCH_DTYPES = [
    "float16", "float32", "float64", "bfloat16", "half", "float", "double", "int8", "int16",
    "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128",
    "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "long", "int", "short",
    "cfloat", "cdouble", "quint8", "qint8", "qint32",
]  # fmt: skip

SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("collections", "deque"),
        ("collections", "Counter"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("builtins", "bytes"),
        ("builtins", "complex"),
        ("builtins", "slice"),
        ("builtins", "range"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("builtins", "tuple"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "bool"),
        ("builtins", "str"),
        ("builtins", "object"),
        ("_codecs", "encode"),
        ("copyreg", "_reconstructor"),
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("uuid", "UUID"),
        # torch: tensor and parameter rebuilders, storages, dtypes, devices, sizes
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_tensor_v3"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._utils", "_rebuild_sparse_tensor"),
        ("torch._utils", "_rebuild_nested_tensor"),
        ("torch._utils", "_rebuild_device_tensor_from_numpy"),
        ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"),
        ("torch._utils", "_rebuild_meta_tensor_no_storage"),
        ("torch._utils", "_rebuild_qtensor"),
        ("torch._utils", "_rebuild_wrapper_subclass"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.serialization", "_get_layout"),
        # TorchScript's constants.pkl builds typed lists and tags types with these
        ("torch.jit._pickle", "build_intlist"),
        ("torch.jit._pickle", "build_tensorlist"),
        ("torch.jit._pickle", "build_doublelist"),
        ("torch.jit._pickle", "build_boollist"),
        ("torch.jit._pickle", "build_tensor_from_id"),
        ("torch.jit._pickle", "restore_type_tag"),
        ("pathlib", "Path"),
        ("pathlib", "PosixPath"),
        ("pathlib", "WindowsPath"),
        ("pathlib", "PurePosixPath"),
        ("pathlib", "PureWindowsPath"),
        ("torch", "Size"),
        ("torch", "device"),
        ("torch", "Tensor"),
        ("torch.nn.parameter", "Parameter"),
        *[("torch", storage) for storage in _TORCH_STORAGES],
        *[("torch.storage", storage) for storage in ("UntypedStorage", "TypedStorage")],
        *[("torch", dtype) for dtype in _TORCH_DTYPES],
        # numpy: arrays, dtypes, scalars, random state
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy", "matrix"),
        ("numpy.ma.core", "_mareconstruct"),
        ("numpy.ma.core", "MaskedArray"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        *[
            ("numpy", scalar)
            for scalar in (
                "float16",
                "float32",
                "float64",
                "int8",
                "int16",
                "int32",
                "int64",
                "uint8",
                "uint16",
                "uint32",
                "uint64",
                "bool_",
                "complex64",
                "complex128",
                "str_",
                "bytes_",
                "object_",
                "void",
                "datetime64",
                "timedelta64",
            )
        ],
        # joblib's array wrapper (the array bytes follow it in the stream; see scan.pickle)
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
    ]
)

SAFE_MODULE_PREFIXES = ("numpy.dtypes",)  # numpy 2 dtype classes (Float32DType, …)

# Whole modules (and their submodules) that can run code, touch files, processes or network,
# load nested payloads, or attack the scanner itself.
DANGEROUS_MODULES: frozenset[str] = frozenset(
    """
    os sys subprocess socket ssl select selectors shutil pty tty termios fcntl resource signal
    runpy pip ensurepip venv importlib imp zipimport pkgutil marshal pickle pickletools shelve
    dbm dill cloudpickle joblib ctypes cffi code codeop pdb bdb cProfile profile pstats timeit
    trace tracemalloc pydoc webbrowser http httplib urllib urllib2 urllib3 requests aiohttp httpx
    smtplib smtpd ftplib telnetlib poplib imaplib nntplib xmlrpc asyncio multiprocessing
    concurrent threading sched tempfile io fileinput logging gc inspect types
    doctest idlelib lib2to3 distutils setuptools test unittest _osx_support _aix_support _pyrepl
    platform sysconfig site builtins operator functools copyreg _winapi winreg msvcrt
    _posixshmem mmap zipfile tarfile
    numpy.f2py numpy.testing numpy.distutils numpy.ctypeslib numpy.lib.npyio numpy.lib.format
    torch.hub torch.jit torch._dynamo torch._inductor torch.fx torch.package torch.distributed
    torch.utils.collect_env torch.utils.bottleneck torch.utils._config_module
    torch.utils.data.datapipes torch.utils.cpp_extension torch.serialization torch._C
    torch.ops torch.classes torch.cuda torch.backends torch.multiprocessing
    fickling picklescan modelscan modelaudit modelseal
    """.split()
)

# Exact dangerous callables outside those modules (aliases already normalised).
DANGEROUS_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [
        ("numpy", "load"),
        ("numpy", "loads"),
        ("numpy", "fromfile"),
        ("numpy", "memmap"),
        ("numpy", "save"),
        ("numpy", "savez"),
        ("numpy", "savetxt"),
        ("numpy", "loadtxt"),
        ("numpy", "genfromtxt"),
        ("torch", "load"),
        ("torch", "save"),
        ("torch", "compile"),
        ("torch.storage", "_load_from_bytes"),
        ("torch", "from_file"),
        ("codecs", "open"),
        ("uuid", "_get_command_stdout"),
    ]
)

# Attribute names that, anywhere in a dotted path, reach code execution or loading.
DANGEROUS_NAMES: frozenset[str] = frozenset(
    """
    system popen popen2 popen3 spawn spawnl spawnv spawnve execl execle execlp execv execve
    execvp eval exec execfile compile __import__ import_module reload getattr setattr delattr
    globals locals vars breakpoint open input run_path run_module _run_code _run_module_code
    check_output check_call getstatusoutput getoutput runcode runsource interact load_module
    exec_module loads load Popen run_command runctx runcall
    """.split()
)


@lru_cache(maxsize=4096)
def normalise_module(module: str) -> str:
    for alias, real in MODULE_ALIASES.items():
        if module == alias or module.startswith(alias + "."):
            return real + module[len(alias) :]
    return module


@lru_cache(maxsize=4096)
def classify_global(module: str, name: str) -> tuple[Verdict, str]:
    """The verdict for importing ``module.name`` in a pickle, with a one-line reason."""
    mod = normalise_module(module)
    if (mod, name) in SAFE_GLOBALS or (
        mod.startswith(SAFE_MODULE_PREFIXES) and "." not in name and not name.startswith("_")
    ):
        return Verdict.SAFE, "on the allow-list of globals legitimate checkpoints use"
    attrs = name.split(".")
    for attr in attrs:
        if attr.startswith("__") and attr.endswith("__") and attr not in ("__main__",):
            return Verdict.DANGEROUS, f"reaches the dunder attribute {attr} (sandbox escape)"
    if (mod, name) in DANGEROUS_GLOBALS:
        return Verdict.DANGEROUS, "a known dangerous callable (file, process or nested loader)"
    path = [*mod.split("."), *attrs]
    for i in range(1, len(path) + 1):
        prefix = normalise_module(".".join(path[:i]))
        if prefix in DANGEROUS_MODULES:
            return Verdict.DANGEROUS, f"from {prefix}, which can run code or touch the system"
    for part in path[1:]:
        part = normalise_module(part)
        if part in DANGEROUS_MODULES and "." not in part:
            return Verdict.DANGEROUS, f"reaches the module {part} through an attribute path"
    for attr in attrs:
        if attr in DANGEROUS_NAMES:
            return Verdict.DANGEROUS, f"{attr} can run code or load nested payloads"
    if mod == "__main__":
        return Verdict.SUSPICIOUS, "a class or function of the script that saved the pickle"
    return Verdict.SUSPICIOUS, "not on the allow-list: needs a human look"
