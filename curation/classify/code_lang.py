"""Programming-language ID from a file path (extension, then well-known filename) or a shebang.

Names are GitHub Linguist's (`Python`, `C++`, `Shell`, `Vim Script`, ...). The table covers
every language of StarCoder's 86-language subset of The Stack (which contains the 43 most
common ones Nemotron-4 trains on) plus other frequent ones. Extensions Linguist calls
ambiguous go to the language that dominates them in The Stack (``.m`` -> Objective-C,
``.pl`` -> Perl, ``.v`` -> Verilog, ``.fs`` -> F#), except ``.h``, which Linguist's own
heuristic splits between C, C++ and Objective-C by looking at the text.
"""

import re
from functools import cache
from pathlib import PurePosixPath

LANGUAGE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "ANTLR": (".g4",),
    "Ada": (".adb", ".ads", ".ada"),
    "Agda": (".agda",),
    "Alloy": (".als",),
    "AppleScript": (".applescript", ".scpt"),
    "Assembly": (".asm", ".s", ".nasm"),
    "Augeas": (".aug",),
    "AWK": (".awk", ".gawk", ".mawk", ".nawk"),
    "Batchfile": (".bat", ".cmd"),
    "Bluespec": (".bsv",),
    "C": (".c", ".h", ".cats", ".idc"),
    "C#": (".cs", ".csx", ".cake"),
    "C++": (".cpp", ".cc", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".tpp", ".inl", ".ino"),
    "Clojure": (".clj", ".cljs", ".cljc", ".edn", ".boot"),
    "CMake": (".cmake", ".cmake.in"),
    "COBOL": (".cob", ".cbl", ".cpy"),
    "CoffeeScript": (".coffee", ".cson", ".iced"),
    "Common Lisp": (".lisp", ".lsp", ".cl", ".asd"),
    "Coq": (".coq",),
    "Crystal": (".cr",),
    "CSS": (".css",),
    "Cuda": (".cu", ".cuh"),
    "D": (".d", ".di"),
    "Dart": (".dart",),
    "Dockerfile": (".dockerfile",),
    "Elixir": (".ex", ".exs"),
    "Elm": (".elm",),
    "Emacs Lisp": (".el", ".emacs"),
    "Erlang": (".erl", ".hrl", ".escript"),
    "F#": (".fs", ".fsi", ".fsx"),
    "Fortran": (".f", ".for", ".f77", ".f90", ".f95", ".f03", ".f08", ".fpp"),
    "GLSL": (".glsl", ".vert", ".frag", ".geom", ".comp", ".tesc", ".tese"),
    "Go": (".go",),
    "GraphQL": (".graphql", ".gql"),
    "Groovy": (".groovy", ".gradle", ".gvy", ".gy"),
    "Haskell": (".hs", ".hs-boot", ".hsc"),
    "HCL": (".hcl", ".tf", ".tfvars"),
    "HTML": (".html", ".htm", ".xhtml", ".inc.html"),
    "Idris": (".idr", ".lidr"),
    "Isabelle": (".thy",),
    "Java": (".java",),
    "Java Server Pages": (".jsp", ".jspf"),
    "JavaScript": (".js", ".mjs", ".cjs", ".jsx", ".jsm"),
    "JSON": (".json", ".jsonl", ".geojson", ".webmanifest"),
    "Julia": (".jl",),
    "Jupyter Notebook": (".ipynb",),
    "Kotlin": (".kt", ".kts", ".ktm"),
    "Lean": (".lean",),
    "Less": (".less",),
    "Literate Agda": (".lagda",),
    "Literate CoffeeScript": (".litcoffee",),
    "Literate Haskell": (".lhs",),
    "Lua": (".lua", ".rockspec"),
    "M4": (".m4",),
    "Makefile": (".mk", ".mak", ".make"),
    "Maple": (".mpl",),
    "Markdown": (".md", ".markdown", ".mdown", ".mkd"),
    "Mathematica": (".nb", ".wl", ".wls"),
    "MATLAB": (".matlab",),
    "Meson": (".meson",),
    "Nim": (".nim", ".nims", ".nimble"),
    "Nix": (".nix",),
    "Objective-C": (".m",),
    "Objective-C++": (".mm",),
    "OCaml": (".ml", ".mli", ".mll", ".mly"),
    "Pascal": (".pas", ".dpr", ".lpr", ".pp"),
    "Perl": (".pl", ".pm", ".t", ".pod", ".psgi", ".perl"),
    "PHP": (".php", ".phtml", ".php3", ".php4", ".php5", ".phps", ".phpt"),
    "PowerShell": (".ps1", ".psm1", ".psd1"),
    "Prolog": (".pro", ".prolog", ".yap"),
    "Protocol Buffer": (".proto",),
    "PureScript": (".purs",),
    "Python": (".py", ".pyi", ".pyw", ".pyx", ".pxd", ".gyp"),
    "R": (".r", ".rd", ".rsx"),
    "Racket": (".rkt", ".rktl", ".scrbl"),
    "reStructuredText": (".rst", ".rest"),
    "RMarkdown": (".rmd",),
    "Roff": (".man", ".mdoc", ".roff", ".ms", ".me"),
    "Ruby": (".rb", ".rake", ".gemspec", ".rbw", ".ru", ".builder"),
    "Rust": (".rs",),
    "SAS": (".sas",),
    "Scala": (".scala", ".sc", ".sbt"),
    "Scheme": (".scm", ".ss", ".sld", ".sls"),
    "SCSS": (".scss",),
    "sed": (".sed",),
    "Shell": (".sh", ".bash", ".zsh", ".ksh", ".bats", ".command", ".tmux"),
    "Smalltalk": (".st",),
    "Solidity": (".sol",),
    "SPARQL": (".sparql", ".rq"),
    "SQL": (".sql", ".ddl", ".psql", ".pgsql", ".mysql"),
    "Stan": (".stan",),
    "Standard ML": (".sml", ".sig", ".fun"),
    "Starlark": (".bzl", ".star"),
    "Stata": (".do", ".ado"),
    "Svelte": (".svelte",),
    "Swift": (".swift",),
    "SystemVerilog": (".sv", ".svh"),
    "Tcl": (".tcl", ".tm", ".exp"),
    "Tcsh": (".tcsh", ".csh"),
    "TeX": (".tex", ".sty", ".cls", ".ltx", ".dtx", ".ins", ".bbx", ".cbx"),
    "Thrift": (".thrift",),
    "TOML": (".toml",),
    "TSX": (".tsx",),
    "TypeScript": (".ts", ".mts", ".cts"),
    "Verilog": (".v", ".vh"),
    "VHDL": (".vhd", ".vhdl"),
    "Vim Script": (".vim", ".vba", ".vmb"),
    "Visual Basic .NET": (".vb", ".vbs"),
    "Vue": (".vue",),
    "XML": (".xml", ".xsd", ".svg", ".plist", ".csproj", ".vcxproj", ".xaml", ".rss", ".wsdl"),
    "XSLT": (".xsl", ".xslt"),
    "Yacc": (".y", ".yy", ".yacc"),
    "YAML": (".yaml", ".yml"),
    "Zig": (".zig",),
}
"""Linguist language -> file extensions (lower case, with the dot)."""

LANGUAGE_FILENAMES: dict[str, tuple[str, ...]] = {
    "CMake": ("CMakeLists.txt",),
    "Dockerfile": ("Dockerfile", "Containerfile"),
    "Emacs Lisp": (".emacs", "_emacs", ".spacemacs"),
    "Groovy": ("Jenkinsfile",),
    "Makefile": ("Makefile", "makefile", "GNUmakefile", "Kbuild", "Makefile.am", "Makefile.in"),
    "Meson": ("meson.build", "meson_options.txt"),
    "Ruby": ("Rakefile", "Gemfile", "Guardfile", "Vagrantfile", "Podfile", "Brewfile", "Fastfile"),
    "Python": ("SConstruct", "SConscript", "wscript"),
    "Shell": (".bashrc", ".bash_profile", ".bash_logout", ".profile", ".zshrc", ".zprofile", "PKGBUILD", "APKBUILD"),
    "Starlark": ("BUILD", "BUILD.bazel", "WORKSPACE", "WORKSPACE.bazel", "Tiltfile"),
    "Vim Script": (".vimrc", "_vimrc", ".gvimrc", ".exrc"),
}
"""Linguist language -> exact file names that identify it without (or despite) an extension."""

INTERPRETER_LANGUAGES: dict[str, str] = {
    "python": "Python",
    "pypy": "Python",
    "sh": "Shell",
    "bash": "Shell",
    "zsh": "Shell",
    "dash": "Shell",
    "ksh": "Shell",
    "ash": "Shell",
    "mksh": "Shell",
    "csh": "Tcsh",
    "tcsh": "Tcsh",
    "perl": "Perl",
    "ruby": "Ruby",
    "jruby": "Ruby",
    "php": "PHP",
    "node": "JavaScript",
    "nodejs": "JavaScript",
    "ts-node": "TypeScript",
    "deno": "TypeScript",
    "lua": "Lua",
    "luajit": "Lua",
    "rscript": "R",
    "julia": "Julia",
    "tclsh": "Tcl",
    "wish": "Tcl",
    "expect": "Tcl",
    "awk": "AWK",
    "gawk": "AWK",
    "mawk": "AWK",
    "nawk": "AWK",
    "sed": "sed",
    "pwsh": "PowerShell",
    "escript": "Erlang",
    "elixir": "Elixir",
    "guile": "Scheme",
    "racket": "Racket",
    "sbcl": "Common Lisp",
    "clisp": "Common Lisp",
    "runghc": "Haskell",
    "runhaskell": "Haskell",
    "ocaml": "OCaml",
    "scala": "Scala",
    "groovy": "Groovy",
    "kotlin": "Kotlin",
    "swift": "Swift",
    "make": "Makefile",
    "osascript": "AppleScript",
    "dart": "Dart",
    "crystal": "Crystal",
}
"""Shebang interpreter (version suffix stripped) -> Linguist language."""

HEADER_HEURISTICS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Objective-C", re.compile(r"^\s*(@(interface|implementation|protocol|end)\b|#import\s)", re.MULTILINE)),
    (
        "C++",
        re.compile(
            r"^\s*(template\s*<|namespace\s+\w|class\s+\w+\s*(final\s*)?[:{]|using\s+namespace\s)"
            r"|^\s*#\s*include\s*<(iostream|string|vector|memory|map|algorithm|utility|cstddef|cstdint)>"
            r"|\bstd::\w",
            re.MULTILINE,
        ),
    ),
)
"""Linguist's idea for ``.h``: C unless the text shows Objective-C or C++ constructs."""
SHEBANG = re.compile(r"^\ufeff?#![ \t]*(\S+)(?:[ \t]+(.*))?")
VERSION_SUFFIX = re.compile(r"[\d.\-]+$")


@cache
def extension_table() -> dict[str, str]:
    """Extension -> language, inverted once from `LANGUAGE_EXTENSIONS`."""
    return {ext: lang for lang, exts in LANGUAGE_EXTENSIONS.items() for ext in exts}


@cache
def filename_table() -> dict[str, str]:
    """File name -> language, inverted once from `LANGUAGE_FILENAMES`."""
    return {name: lang for lang, names in LANGUAGE_FILENAMES.items() for name in names}


def language_from_path(path: str | None, text: str | None = None) -> str | None:
    """Language named by a path's file name or extension, or None when it names none.

    ``text`` (the start of the file is enough) only settles ``.h`` between C, C++ and Objective-C.
    """
    if not path:
        return None
    name = PurePosixPath(path.replace("\\", "/")).name
    by_name = filename_table().get(name)
    if by_name:
        return by_name
    if name.startswith(("Dockerfile.", "Containerfile.")):
        return "Dockerfile"
    lowered = name.lower()
    extensions = extension_table()
    for dot in _dot_positions(lowered):
        language = extensions.get(lowered[dot:])
        if language == "C" and lowered.endswith(".h") and text:
            return _header_language(text)
        if language:
            return language
    return None


def _header_language(text: str) -> str:
    for language, pattern in HEADER_HEURISTICS:
        if pattern.search(text):
            return language
    return "C"


def _dot_positions(name: str) -> list[int]:
    """Dots of a file name, outermost first, so ``x.cmake.in`` tries ``.cmake.in`` before ``.in``."""
    return [i for i, char in enumerate(name) if char == "." and i > 0]


def language_from_shebang(text: str | None) -> str | None:
    """Language of a ``#!`` first line (``#!/usr/bin/env -S python3 -u`` -> Python), or None."""
    if not text:
        return None
    match = SHEBANG.match(text[:256])
    if not match:
        return None
    program = PurePosixPath(match.group(1)).name
    if program == "env":
        env_words = [w for w in (match.group(2) or "").split() if not w.startswith("-") and "=" not in w]
        if not env_words:
            return None
        program = PurePosixPath(env_words[0]).name
    interpreter = VERSION_SUFFIX.sub("", program.lower())
    return INTERPRETER_LANGUAGES.get(interpreter)
