"""The dispatcher: the heartbeat cycle and the workers it starts.

Owns the cron cycle (``cycle``), reconciling the registry with reality
(``reconcile``), claiming and launching workers into worktrees (``launch``), the
worker wrapper (``worker``) and the prompt an attempt starts from (``prompt``).

May import ``status`` and ``state`` (it reads the world through ``observe``), the
two layers (``plan``, ``registry``) and the low floor; never ``cli`` or ``serve``.
"""
