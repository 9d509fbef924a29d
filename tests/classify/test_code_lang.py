"""Path, filename, header-heuristic and shebang rules for the programming language."""

from __future__ import annotations

from collections import Counter

import pytest

from corpusmill.curation.classify.code_lang import (
    LANGUAGE_EXTENSIONS,
    LANGUAGE_FILENAMES,
    language_from_path,
    language_from_shebang,
)

# Nemotron-4 trains on 43 languages of The Stack without listing them: these are 43 of The
# Stack's largest, in Linguist names; the table must cover all of them.
STACK_TOP_LANGUAGES = (
    "JavaScript",
    "Java",
    "C",
    "PHP",
    "Python",
    "C++",
    "C#",
    "TypeScript",
    "Go",
    "SQL",
    "Markdown",
    "HTML",
    "Ruby",
    "Rust",
    "CSS",
    "Shell",
    "Kotlin",
    "Scala",
    "Swift",
    "Lua",
    "Dart",
    "Perl",
    "Haskell",
    "Julia",
    "Assembly",
    "Fortran",
    "TeX",
    "PowerShell",
    "Batchfile",
    "CMake",
    "Makefile",
    "Dockerfile",
    "Visual Basic .NET",
    "Elixir",
    "Erlang",
    "Groovy",
    "OCaml",
    "Racket",
    "Scheme",
    "Common Lisp",
    "Emacs Lisp",
    "Clojure",
    "Objective-C",
)


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("src/app/main.py", "Python"),
        ("lib/Foo.PM", "Perl"),
        ("include/zlib.h", "C"),
        ("kernel/sched.cc", "C++"),
        ("static/jquery.min.js", "JavaScript"),
        ("web/index.d.ts", "TypeScript"),
        ("cmake/FindFoo.cmake.in", "CMake"),
        ("C:\\Users\\dev\\Program.cs", "C#"),
        ("notebooks/eda.ipynb", "Jupyter Notebook"),
        ("docs/README.md", "Markdown"),
    ],
)
def test_extension_decides(path: str, language: str) -> None:
    assert language_from_path(path) == language


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("repo/Makefile", "Makefile"),
        ("GNUmakefile", "Makefile"),
        ("docker/Dockerfile", "Dockerfile"),
        ("docker/Dockerfile.dev", "Dockerfile"),
        ("CMakeLists.txt", "CMake"),
        ("Gemfile", "Ruby"),
        ("home/.bashrc", "Shell"),
        ("BUILD.bazel", "Starlark"),
    ],
)
def test_well_known_filename_decides(path: str, language: str) -> None:
    assert language_from_path(path) == language


@pytest.mark.parametrize("path", [None, "", "README", "notes.txt", "archive.tar.gz", "photo.jpeg", "Makefile.bak"])
def test_paths_that_name_no_language(path: str | None) -> None:
    assert language_from_path(path) is None


def test_header_heuristic_on_real_headers(first_match) -> None:
    c_header = first_match("/usr/include/stdio.h")
    cpp_header = first_match("/usr/include/c++/*/bits/stl_vector.h")
    assert language_from_path(str(c_header), c_header.read_text(errors="replace")[:8192]) == "C"
    assert language_from_path(str(cpp_header), cpp_header.read_text(errors="replace")[:8192]) == "C++"
    assert (
        language_from_path("Foo.h", "#import <Foundation/Foundation.h>\n@interface Foo : NSObject\n@end\n")
        == "Objective-C"
    )
    assert language_from_path(str(cpp_header)) == "C"  # without text, .h keeps its default


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("#!/bin/sh\nset -e\n", "Shell"),
        ("#!/usr/bin/env bash\n", "Shell"),
        ("#!/usr/bin/env -S python3 -u\nimport sys\n", "Python"),
        ("#!/usr/bin/python3.11\n", "Python"),
        ("#! /usr/bin/perl -w\n", "Perl"),
        ("\ufeff#!/usr/bin/env node\n", "JavaScript"),
        ("#!/usr/bin/env VAR=1 ruby\n", "Ruby"),
        ("#!/usr/bin/guile-3.0 -s\n", "Scheme"),
        ("#!/usr/bin/awk -f\n", "AWK"),
    ],
)
def test_shebang_decides(text: str, language: str) -> None:
    assert language_from_shebang(text) == language


@pytest.mark.parametrize(
    "text", [None, "", "# comment\n#!/bin/sh", "#!/usr/bin/env\n", "#!/opt/unknown-tool\n", " #!/bin/sh"]
)
def test_no_shebang_language(text: str | None) -> None:
    assert language_from_shebang(text) is None


def test_real_scripts_on_this_machine_have_their_shebang_language(first_match) -> None:
    script = first_match("/usr/bin/gettext.sh")
    assert language_from_shebang(script.read_text(errors="replace")) == "Shell"


def test_table_covers_43_large_stack_languages() -> None:
    assert len(STACK_TOP_LANGUAGES) == 43
    covered = set(LANGUAGE_EXTENSIONS) | set(LANGUAGE_FILENAMES)
    assert sorted(set(STACK_TOP_LANGUAGES) - covered) == []


def test_every_extension_and_filename_names_exactly_one_language() -> None:
    extensions = Counter(ext for exts in LANGUAGE_EXTENSIONS.values() for ext in exts)
    filenames = Counter(name for names in LANGUAGE_FILENAMES.values() for name in names)
    assert [ext for ext, count in extensions.items() if count > 1] == []
    assert [name for name, count in filenames.items() if count > 1] == []
    assert all(ext.startswith(".") and ext == ext.lower() for ext in extensions)
