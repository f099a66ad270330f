//! Log set-up shared by both binaries: `UPLOADGATE_LOG` filters,
//! `UPLOADGATE_LOG_FORMAT` picks text or JSON, lines go to stderr (stdout
//! carries the EMF metric lines).
//!
//! JSON lines are flat objects: `timestamp`, `level`, `message`, the event's
//! fields (`decision`, `limits`, `attempts`) and the request span's fields
//! (`method`, `path`, `request_id`). Nothing logged carries a presigned URL,
//! a credential or a request body.

use tracing_subscriber::EnvFilter;

use crate::config::Config;
use crate::settings::{LogFormat, SettingError};

/// Installs the global subscriber. A second call in one process is ignored.
pub fn init(config: &Config) -> Result<(), SettingError> {
    // The filter was checked when the setting was parsed.
    let filter =
        EnvFilter::try_new(&config.log).map_err(|e| SettingError::new("UPLOADGATE_LOG", e))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}
