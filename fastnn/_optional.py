"""Optional dependencies: imported when first needed, with an error naming the extra that installs them."""
import importlib

__all__ = ["require"]


def require(module, extra, purpose):
    """Import and return ``module``; if it is missing, raise ImportError naming ``extra`` of fastnn-cpu.

    ``purpose`` starts the message, e.g. ``"fastnn.export_onnx"`` gives "fastnn.export_onnx needs the
    onnx package, which is not installed: pip install "fastnn-cpu[onnx]"".
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise ImportError(
            f'{purpose} needs the {package} package, which is not installed: pip install "fastnn-cpu[{extra}]"'
        ) from exc
