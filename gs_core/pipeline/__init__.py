"""The command-line pipeline: ``prepare`` writes a work folder; ``segment``, ``query``, ``render``
and ``extract`` read it (:mod:`.workdir` says what is in it)."""
