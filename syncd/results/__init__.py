"""Results come home: batch job outputs and OCR text written back beside the inputs' tree.

Parts (each a module with one job; :mod:`~syncd.results.worker` composes them):

- :mod:`~syncd.results.specs`: which folders bring results back, and how;
- :mod:`~syncd.results.naming`: where an input's results land in the results folder;
- :mod:`~syncd.results.landing`: temporary file, size check, fsync, rename, never over an
  edited file, never through a symlink;
- :mod:`~syncd.results.batch_order`: batch output lines in the order of the input's custom_ids;
- :mod:`~syncd.results.discovery`: uploaded files become jobs (or join one for their content);
- :mod:`~syncd.results.starting`: the spending guard, batch job creates and OCR requests;
- :mod:`~syncd.results.polling`: one job listing per folder per interval;
- :mod:`~syncd.results.fetching`: finished jobs' files downloaded and landed.

Import the parts themselves (``syncd.results.worker``): this package's import loads nothing, so
a command that needs only :mod:`~syncd.results.specs` does not pay for the worker's stack.
"""
