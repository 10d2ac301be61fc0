"""Targeted LD_LIBRARY_PATH: ELF reading and the loader analysis (pure: reads files, writes none).

- :mod:`~launcher.ld.elf` (with :mod:`~launcher.ld.elfinfo`, :mod:`~launcher.ld.elfsource`): the ELF reader.
- :mod:`~launcher.ld.ldsocache`: ``/etc/ld.so.cache``.
- :mod:`~launcher.ld.search`: the loader's search order and resolver.
- :mod:`~launcher.ld.walk`: walking the env with directory signatures.
- :mod:`~launcher.ld.link`, :mod:`~launcher.ld.choose`: linking the env, choosing the directories.
- :mod:`~launcher.ld.analysis`: ``analyze()``; :mod:`~launcher.ld.result`: its answer;
  :mod:`~launcher.ld.wording`: the answer in words.
- :mod:`~launcher.ld.store`: the store the analysis keeps its work in (on disk: ``launcher.run.ldstore``);
  :mod:`~launcher.ld.docs`: the documents in it.
"""
