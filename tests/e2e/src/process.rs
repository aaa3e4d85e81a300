//! Server processes a test starts (`spin up`, Redis, sqld): each leads a process group of its
//! own and is ended with the whole group, because `spin up` serves through a child process
//! (`spin trigger http`) that outlives a kill of `spin up` alone.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::process::{Child, Command};

/// What the processes given `path` as their output wrote there so far (empty if nothing yet).
pub fn read_output(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A child process in a new process group, killed with its group when dropped.
pub struct ProcessGroup {
    child: Child,
    id: i32,
    name: String,
    output_path: PathBuf,
}

impl ProcessGroup {
    /// Starts `command` as the leader of a new process group, its stdout and stderr appended to
    /// `output_path`.
    pub fn spawn(mut command: Command, output_path: &Path) -> std::io::Result<Self> {
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output_path)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(output.try_clone()?))
            .stderr(Stdio::from(output))
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn()?;
        let id = child.id().expect("a process just started has an id") as i32;
        let name = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        Ok(Self {
            child,
            id,
            name,
            output_path: output_path.to_owned(),
        })
    }

    /// Waits until 127.0.0.1:`port` accepts connections. If the process exits first, or
    /// `timeout` passes, the group is ended and the error carries what it wrote.
    pub async fn wait_until_listening(&mut self, port: u16, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                self.end();
                bail!("{} exited ({status}):\n{}", self.name, self.output());
            }
            if started.elapsed() > timeout {
                self.end();
                bail!(
                    "{} did not listen within {timeout:?}:\n{}",
                    self.name,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// What the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        read_output(&self.output_path)
    }

    /// Ends the group the hard way, as a crash would (SIGKILL), and reaps the leader.
    pub async fn kill(&mut self) {
        self.end();
        let _ = self.child.wait().await;
    }

    fn end(&self) {
        // SAFETY: kill(2) on the process group this struct started.
        unsafe {
            libc::kill(-self.id, libc::SIGKILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.end();
    }
}
