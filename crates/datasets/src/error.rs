/// A data file that cannot be used, with the file and what is wrong in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: {error}")]
    Io {
        /// The file.
        file: String,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// The file's contents are malformed.
    #[error("{file}: {message}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong and where (field or byte offset, expected versus found).
        message: String,
    },
    /// Two files that belong together disagree (image and label counts).
    #[error("{message}")]
    Mismatch {
        /// What disagrees, naming both files.
        message: String,
    },
    /// No mirror delivered a file with the right checksum.
    #[error("downloading {file} failed: {message}")]
    Download {
        /// The file.
        file: String,
        /// What each mirror did wrong.
        message: String,
    },
    /// A dataset directory lacks one of its files.
    #[error("{dir}: missing {file} (looked for {candidates})")]
    Missing {
        /// The directory.
        dir: String,
        /// The file's standard name.
        file: String,
        /// The names tried.
        candidates: String,
    },
}

impl Error {
    pub(crate) fn format(file: &str, message: impl Into<String>) -> Self {
        Error::Format {
            file: file.to_string(),
            message: message.into(),
        }
    }
}
