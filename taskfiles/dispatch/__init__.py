"""The dispatcher: the heartbeat cycle and the workers it starts.

Owns the cron cycle (``cycle``) and what its steps share (``scene``), reconciling
the registry with reality (``reconcile``), claiming and launching workers into
worktrees (``launch``), the worker wrapper (``worker``), the prompt an attempt
starts from (``prompt``) and this host's own files: prompts, worker output, the
worker and cycle locks (``hostfiles``).

May import ``status`` and ``state`` (it reads the world through ``observe``), the
two layers (``plan``, ``registry``) and the low floor; never ``cli`` or ``serve``.
"""
