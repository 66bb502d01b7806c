//! The one error type of the crate: an operator's configuration was rejected.
//! Nothing else here can fail; the logic does no I/O.

/// Why a [`crate::ThrottleConfig`] (or one of its parts) was rejected. The
/// message names the field and the offending value so it can be shown to an
/// operator as is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A window's `start` or `end` is not a time of day.
    #[error("window {window}: {field} {value:?} is not a time of day HH:MM (00:00 to 23:59)")]
    BadTime {
        window: usize,
        field: &'static str,
        value: String,
    },
    /// A window names a time zone the bundled database does not know.
    #[error(
        "window {window}: unknown time zone {tz:?} (expected an IANA name such as \"Europe/Berlin\" or \"UTC\")"
    )]
    UnknownTz { window: usize, tz: String },
    /// A window starts where it ends, so it would never (or always) match;
    /// either reading is a likely typo.
    #[error(
        "window {window}: start and end are both {time}, so the window is empty; to cover the whole day, drop the windows and set the schedule's default"
    )]
    EmptyWindow { window: usize, time: String },
    /// A window lists `days` but the list is empty, so it could never match.
    #[error(
        "window {window}: days is an empty list, so the window never matches; omit days for every day"
    )]
    NoDays { window: usize },
    /// A rate is negative, NaN or infinite.
    #[error("{field} must be a finite number >= 0 (0 pauses), got {value}")]
    BadRate { field: String, value: f64 },
    /// Any other out-of-range setting.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

/// Checks an optional rate: `None` (unlimited) or a finite value `>= 0`.
pub(crate) fn check_rate(field: &str, rate: Option<f64>) -> Result<(), ConfigError> {
    match rate {
        Some(value) if !(value.is_finite() && value >= 0.0) => Err(ConfigError::BadRate {
            field: field.to_owned(),
            value,
        }),
        _ => Ok(()),
    }
}

/// Shorthand for [`ConfigError::Invalid`] unless `ok`.
pub(crate) fn ensure(ok: bool, field: &str, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: field.to_owned(),
            reason: reason.to_owned(),
        })
    }
}
