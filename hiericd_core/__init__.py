"""hiericd: hierarchical ICD-10 coding from medical coders' BRAT rounds."""

__version__ = "0.1.0"
