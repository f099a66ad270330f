//! The one error of configuration: an invalid setting, in one line naming it.

/// An invalid setting: one line, naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {setting}: {message}")]
pub struct SettingError {
    /// The setting's name (`UPLOADGATE_*`), or `--config` for the file.
    pub setting: String,
    /// What is wrong, and what is accepted.
    pub message: String,
}

impl SettingError {
    /// An error of `setting`.
    pub fn new(setting: impl Into<String>, message: impl std::fmt::Display) -> Self {
        SettingError {
            setting: setting.into(),
            message: message.to_string(),
        }
    }
}
