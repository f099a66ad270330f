//! The settings as documented: [`SettingDoc`] per setting, read from the
//! one definition ([`Settings`]), for `--help`, the README's table (a test
//! keeps it equal) and the Lambda function's manifest (which settings it
//! reads).

use clap::{Args, Command};

use super::{SERVE_ONLY, Settings};

/// The settings' arguments (a bare command holding only them), which the
/// docs, the layering and the one-line errors read.
pub(crate) fn settings_command() -> Command {
    Settings::augment_args(Command::new("uploadgate").no_binary_name(true))
}

/// A setting's `UPLOADGATE_*` name.
pub(crate) fn env_name(arg: &clap::Arg) -> Option<String> {
    arg.get_env().map(|e| e.to_string_lossy().into_owned())
}

/// One setting as documented: its name, default and help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingDoc {
    /// `UPLOADGATE_*`.
    pub name: String,
    /// The default, if any.
    pub default: Option<String>,
    /// What it does.
    pub help: String,
    /// Whether only `uploadgate serve` reads it.
    pub serve_only: bool,
}

impl Settings {
    /// Every setting, in definition order (for the README and `--help`).
    pub fn docs() -> Vec<SettingDoc> {
        settings_command()
            .get_arguments()
            .filter_map(|a| {
                Some(SettingDoc {
                    name: env_name(a)?,
                    default: a
                        .get_default_values()
                        .first()
                        .map(|d| d.to_string_lossy().into_owned()),
                    help: a
                        .get_help()
                        .map(|h| {
                            h.to_string()
                                .split_whitespace()
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default(),
                    serve_only: a.get_help_heading() == Some(SERVE_ONLY),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_documented_with_a_name_and_help() {
        let docs = Settings::docs();
        assert_eq!(docs.len(), 43);
        let serve_only: Vec<&str> = docs
            .iter()
            .filter(|d| d.serve_only)
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(
            serve_only,
            [
                "UPLOADGATE_CHARGE",
                "UPLOADGATE_SETTLE_GRACE",
                "UPLOADGATE_USAGE_TABLE",
                "UPLOADGATE_SETTLE_QUEUE_URL",
                "UPLOADGATE_ACCEPTED_QUEUE_URL",
                "UPLOADGATE_DATA_DIR",
                "UPLOADGATE_LISTEN",
                "UPLOADGATE_S3_LISTEN",
                "UPLOADGATE_HEADER_TIMEOUT",
                "UPLOADGATE_BODY_TIMEOUT",
                "UPLOADGATE_IDLE_TIMEOUT",
                "UPLOADGATE_MAX_CONNECTIONS",
            ]
        );
        for d in &docs {
            assert!(d.name.starts_with("UPLOADGATE_"), "{d:?}");
            assert!(!d.help.is_empty() && !d.help.contains('\n'), "{d:?}");
        }
    }

    /// The README's table is this definition: one row per setting, in
    /// order, with its default and its help.
    #[test]
    fn the_readme_table_is_the_definition() {
        let readme = include_str!("../../../../README.md");
        let rows: Vec<&str> = readme
            .lines()
            .filter(|l| l.starts_with("| `UPLOADGATE_"))
            .collect();
        let want: Vec<String> = Settings::docs()
            .iter()
            .map(|d| {
                let default = match d.default.as_deref() {
                    None | Some("") => "(none)".to_owned(),
                    Some(v) => format!("`{v}`"),
                };
                // A `|` in a cell would end it.
                format!(
                    "| `{}` | {} | {} |",
                    d.name,
                    default.replace('|', "\\|"),
                    d.help.replace('|', "\\|")
                )
            })
            .collect();
        assert!(
            rows == want,
            "regenerate the README's configuration table:\n{}",
            want.join("\n")
        );
    }
}
