"""The durable layer: task files and what is read from them.

Owns parsing and rendering task files (``taskfile``, ``frontmatter``, ``scalars``),
line-minimal edits and the durable edit commands (``edits``), loading every task
from the working tree or a git ref with the parse cache (``source``, ``cache``),
validation and the dependency graph (``validate``, ``graph``), read-only questions
(``query``) and ``task init`` (``scaffold``).

May import the low floor (``errors``, ``config``, ``git``, ``atomic``, ``slugs``)
and nothing else: it knows nothing of the registry or of dispatch. Submodules are
imported where they are used; this package imports none of them, so the warm
``task list`` path pays only for what it reads.
"""
