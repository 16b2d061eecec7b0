//! Gateway (in progress).
