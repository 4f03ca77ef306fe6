//! The worker's two handlers: print each message as a JSON line, or run a command for it.

use rustix::process::{Pid, Signal, kill_process_group};
use serde::Serialize;
use sqsbalancer_runtime::{HandlerError, Message};
use tokio::io::AsyncWriteExt;

/// One handled message as `--print` writes it.
#[derive(Serialize)]
struct Printed<'a> {
    /// The queue's URL.
    queue: &'a str,
    /// SQS's MessageId.
    message_id: &'a str,
    /// The body.
    body: &'a str,
    /// ApproximateReceiveCount.
    receive_count: u32,
    /// The instance that handled it.
    instance: &'a str,
}

/// Prints `m` as one JSON line on stdout.
pub async fn print(instance: String, m: Message) -> Result<(), HandlerError> {
    let line = serde_json::to_string(&Printed {
        queue: m.queue.as_str(),
        message_id: &m.message_id,
        body: &m.body,
        receive_count: m.receive_count,
        instance: &instance,
    })?;
    // One locked write per line, so concurrent handlers never interleave their lines.
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, format!("{line}\n").as_bytes())
        .and_then(|()| std::io::Write::flush(&mut out))
        .map_err(|e| HandlerError::new(format!("stdout: {e}")))
}

/// A command's process group, killed if the handler is dropped before the command ended (its
/// timeout passed, or the worker is stopping): a command left running would handle the
/// message a second time beside its redelivery.
struct Group(Option<Pid>);

impl Group {
    /// The command ended and was reaped: its group is no longer ours to kill.
    fn ended(mut self) {
        self.0 = None;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // The leader is not reaped yet, so the group id is still this command's.
            let _ = kill_process_group(pid, Signal::KILL);
        }
    }
}

/// Runs `cmd` with `sh -c` in a process group of its own, `m`'s body on its stdin and its
/// metadata in the environment; exit status 0 is success.
pub async fn exec(cmd: String, m: Message) -> Result<(), HandlerError> {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(&cmd)
        .env("SQS_MESSAGE_ID", &m.message_id)
        .env("SQS_QUEUE_URL", m.queue.as_str())
        .env("SQS_RECEIVE_COUNT", m.receive_count.to_string())
        .stdin(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // String and number attributes; a binary one has no text to put in the environment.
    for (k, v) in m
        .attributes
        .iter()
        .filter_map(|(k, v)| Some((k, v.as_str()?)))
    {
        command.env(format!("SQS_ATTR_{}", env_name(k)), v);
    }
    let mut child = command
        .spawn()
        .map_err(|e| HandlerError::new(format!("cannot run {cmd:?}: {e}")))?;
    let group = Group(child.id().and_then(|id| Pid::from_raw(id.try_into().ok()?)));
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin closes the pipe; that is its business.
        let _ = stdin.write_all(m.body.as_bytes()).await;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| HandlerError::new(format!("waiting for {cmd:?}: {e}")))?;
    group.ended();
    if status.success() {
        Ok(())
    } else {
        Err(HandlerError::new(format!("{cmd:?} exited with {status}")))
    }
}

/// An attribute name as an environment variable's: capitals, digits and underscores.
fn env_name(attribute: &str) -> String {
    attribute
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}
