"""How a step fails: with the underlying error's own words, retried by Dagster only when it is transient."""

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg

from espcore.transient import is_transient

#: step retries for transient faults only (a Failure raised by :func:`failures_explained` says which)
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=3, delay=20, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def explain(exc: BaseException) -> str:
    """``<ErrorType>: <message>``, the message as the database or provider gave it."""
    text = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {text}"


def as_failure(exc: BaseException, metadata: Mapping[str, Any] | None = None) -> dg.Failure:
    transient = is_transient(exc)
    note = "transient: Dagster retries the step" if transient else "not transient: not retried"
    return dg.Failure(
        description=f"{explain(exc)} ({note})",
        metadata={k: v for k, v in (metadata or {}).items() if v is not None},
        allow_retries=transient,
    )


@contextmanager
def failures_explained() -> Iterator[None]:
    """Turn any error of the block into a ``dg.Failure`` that names it and allows step retries only when it is
    transient (a configuration or SQL error fails at once)."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        raise as_failure(exc, getattr(exc, "counts", None)) from exc
