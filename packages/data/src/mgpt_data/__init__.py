"""mgpt_data: Flickr30k-format ingestion (CSV record by record → polars/Arrow → Ray Data), synthetic scenes,
rejects report.

Imports no other workspace package: the encoder's preprocessing arrives as a plain dict
(``PreprocessSpec.as_dict()``). Ray is imported lazily, only where a Ray Dataset is built.

Names load on first use (``lazy_loader``): a Ray worker that decodes images imports the image code, not
the CSV reader, polars and the settings (a third of a second of every decode worker's start); the
public API is listed once, in ``__init__.pyi``.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
