"""ecg2abp: arterial blood pressure estimated point by point from single-lead ECG."""

__version__ = "0.1.0"
