//! The layers under the settings: clap reads flags and the environment;
//! the optional TOML file's values become clap's defaults
//! ([`with_defaults`]); a caller without a real environment hands its
//! values over as flags ([`Settings::from_lookup`]). Also: one-line errors
//! that name the setting, and each setting's effective value and source for
//! `config check`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, FromArgMatches};

use crate::settings::{SettingError, Settings, env_name, settings_command};

impl Settings {
    /// Parses the settings from `lookup` (names `UPLOADGATE_*`) instead of
    /// the process environment, over `defaults` (setting names and values,
    /// like the file's). The values reach clap as flags, so they are parsed
    /// and reported exactly as environment values are.
    pub fn from_lookup(
        defaults: &[(&str, &str)],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, SettingError> {
        let mut cmd = settings_command();
        // Only `lookup` counts: the process environment must not leak in.
        let ids: Vec<(String, String)> = cmd
            .get_arguments()
            .filter_map(|a| Some((a.get_id().to_string(), env_name(a)?)))
            .collect();
        for (id, _) in &ids {
            cmd = cmd.mut_arg(id, |a| a.env(None::<&str>));
        }
        let defaults: Vec<(String, String)> = defaults
            .iter()
            .map(|(name, v)| (id_of(&ids, name), (*v).to_owned()))
            .collect();
        cmd = with_defaults(cmd, &defaults);
        let args: Vec<OsString> = ids
            .iter()
            .filter_map(|(id, env)| {
                lookup(env).map(|v| format!("--{}={v}", id.replace('_', "-")).into())
            })
            .collect();
        let matches = cmd.try_get_matches_from_mut(args).map_err(|e| {
            // Named from the unstripped definition, which knows the variables.
            one_line(&settings_command(), &e)
                .unwrap_or_else(|| SettingError::new("settings", e.kind()))
        })?;
        Settings::from_arg_matches(&matches).map_err(|e| SettingError::new("settings", e))
    }
}

/// The argument id of the setting named `name` (`UPLOADGATE_X` or `x`).
fn id_of(ids: &[(String, String)], name: &str) -> String {
    ids.iter()
        .find(|(id, env)| env == name || id == name)
        .map_or_else(|| name.to_ascii_lowercase(), |(id, _)| id.clone())
}

/// `cmd` with `values` (argument id, text) as its defaults: the file's
/// layer, under the environment and the flags.
pub fn with_defaults(mut cmd: Command, values: &[(String, String)]) -> Command {
    for (id, value) in values {
        let value = value.clone();
        cmd = cmd.mut_arg(id, move |a| a.default_value(value));
    }
    cmd
}

/// Reads the settings file: a TOML table of `name = value` with the names of
/// the settings without the prefix, in lower case. Returns (id, text) pairs
/// for [`with_defaults`]; an unknown name is an error.
pub fn read_file(path: &Path) -> Result<Vec<(String, String)>, SettingError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        SettingError::new("--config", format!("cannot read {}: {e}", path.display()))
    })?;
    parse_file(&text).map_err(|m| SettingError::new("--config", format!("{}: {m}", path.display())))
}

/// The TOML text of a settings file, as (id, text) pairs.
pub fn parse_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| e.message().to_owned())?;
    let known: Vec<String> = settings_command()
        .get_arguments()
        .filter(|a| a.get_env().is_some())
        .map(|a| a.get_id().to_string())
        .collect();
    table
        .into_iter()
        .map(|(k, v)| {
            if !known.contains(&k) {
                return Err(format!("unknown setting `{k}`"));
            }
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "`{k}` must be a string, a whole number or a boolean, not {}",
                        other.type_str()
                    ));
                }
            };
            Ok((k, text))
        })
        .collect()
}

/// The `--config FILE` of an argument list, found before clap parses it
/// (the file's values become clap's defaults).
pub fn config_flag(args: &[OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some(PathBuf::from(v));
        }
    }
    None
}

/// A clap error about a setting's value, as one line naming the setting;
/// `None` for other errors (usage, help), which clap prints itself.
pub fn one_line(cmd: &Command, e: &clap::Error) -> Option<SettingError> {
    if !matches!(
        e.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    // Shown as `--long <VALUE>`.
    let long = shown.strip_prefix("--")?.split([' ', '=']).next()?;
    let arg = all_arguments(cmd).find(|a| a.get_long() == Some(long))?;
    let name = env_name(arg).unwrap_or_else(|| format!("--{}", arg.get_id()));
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v.clone(),
        _ => String::new(),
    };
    let message = match (e.kind(), e.get(ContextKind::ValidValue)) {
        (ErrorKind::InvalidValue, Some(ContextValue::Strings(valid))) => {
            format!("unknown value `{value}` (expected {})", or_list(valid))
        }
        _ => match std::error::Error::source(e) {
            Some(source) => source.to_string(),
            None => format!("`{value}` is not valid"),
        },
    };
    Some(SettingError::new(name, message))
}

fn all_arguments(cmd: &Command) -> Box<dyn Iterator<Item = &clap::Arg> + '_> {
    Box::new(
        cmd.get_arguments()
            .chain(cmd.get_subcommands().flat_map(all_arguments)),
    )
}

fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// The effective value of every setting and where it came from, in
/// definition order, for `config check`: (name, value, source). `file`
/// lists the ids the settings file set.
pub fn effective(
    matches: &ArgMatches,
    file: &[(String, String)],
) -> Vec<(String, String, &'static str)> {
    settings_command()
        .get_arguments()
        .filter_map(|a| {
            let name = env_name(a)?;
            let id = a.get_id().as_str();
            // Secrets are never printed, only whether they are set.
            let secret = a.is_hide_env_values_set();
            let value = matches
                .get_raw(id)
                .filter(|_| !secret)
                .map(|vs| {
                    vs.map(|v| v.to_string_lossy())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| {
                    if secret && matches.get_raw(id).is_some() {
                        "(set, not shown)".to_owned()
                    } else {
                        String::new()
                    }
                });
            let source = match matches.value_source(id) {
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "environment",
                Some(ValueSource::DefaultValue) if file.iter().any(|(k, _)| k == id) => "file",
                Some(ValueSource::DefaultValue) => "default",
                _ => "unset",
            };
            Some((name, value, source))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::ObjectBytes;
    use std::time::Duration;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingError> {
        Settings::from_lookup(&[], |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_file_is_a_default_under_the_environment() {
        let file =
            parse_file("limits = \"a=user:1/1h\"\nurl_ttl = \"10m\"\nmax_object_bytes = 1000\n")
                .unwrap();
        let defaults: Vec<(&str, &str)> =
            file.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let s = Settings::from_lookup(&defaults, |k| {
            (k == "UPLOADGATE_URL_TTL").then(|| "2m".to_owned())
        })
        .unwrap();
        assert_eq!(s.limits.0.to_string(), "a=user:1/1h:sliding");
        assert_eq!(s.url_ttl, Duration::from_secs(120));
        assert_eq!(s.max_object_bytes, ObjectBytes(1000));
        assert_eq!(
            parse_file("limts = \"x\""),
            Err("unknown setting `limts`".into())
        );
        assert!(parse_file("limits = [1]").is_err());
    }

    #[test]
    fn enum_errors_list_the_accepted_values() {
        let e = load(&[("UPLOADGATE_STORE", "redis")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid UPLOADGATE_STORE: unknown value `redis` (expected file, memory or dynamodb)"
        );
        let e = load(&[("UPLOADGATE_FAIL_OPEN", "maybe")]).unwrap_err();
        assert_eq!(e.setting, "UPLOADGATE_FAIL_OPEN");
    }

    #[test]
    fn the_config_flag_is_found_before_parsing() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            config_flag(&args(&["serve", "--config", "a.toml"])),
            Some("a.toml".into())
        );
        assert_eq!(
            config_flag(&args(&["--config=b.toml", "serve"])),
            Some("b.toml".into())
        );
        assert_eq!(config_flag(&args(&["serve", "--", "--config", "c"])), None);
    }
}
