"""Targeted LD_LIBRARY_PATH: ELF reading and the loader analysis (pure: reads files, writes none).

- :mod:`~launcher.ld.elf` (with :mod:`~launcher.ld.elfinfo`, :mod:`~launcher.ld.elfsource`): the ELF
  reader (a script's ``#!`` line is read by :mod:`launcher.core.programs`).
- :mod:`~launcher.ld.ldsocache`: ``/etc/ld.so.cache``; :mod:`~launcher.ld.sysdirs`: the system's library
  directories and ``LD_LIBRARY_PATH``'s entries; :mod:`~launcher.ld.search`: the loader's search order.
- :mod:`~launcher.ld.walk`: walking the env; :mod:`~launcher.ld.sigs`: signatures (fine, or coarse for
  an image).
- :mod:`~launcher.ld.link`, :mod:`~launcher.ld.choose`: linking the env, choosing the directories.
- :mod:`~launcher.ld.analysis`: ``analyze()`` and the question; :mod:`~launcher.ld.answers`: stored answers
  and when they hold (the fast path); :mod:`~launcher.ld.fresh`: a fresh answer (the slow path).
- :mod:`~launcher.ld.result`: the answer as data; :mod:`~launcher.ld.wording`: in words;
  :mod:`~launcher.ld.sonames`: the driver's sonames and hints.
- :mod:`~launcher.ld.store`: where the work is kept (on disk: ``launcher.run.ldstore``);
  :mod:`~launcher.ld.docs`: the walk and objects documents; :mod:`~launcher.ld.precompute`: an image
  build's pre-computed analysis (``ma-launch --ld-report --save``).
"""
