//! ui-compat
