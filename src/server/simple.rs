//! The simple service, the server side of `tcp_simple.py`: receive-all the client's
//! 16 octets, print them, answer [`FAREWELL`], close.

use tokio::io::AsyncWriteExt;

use super::Peer;
use crate::error::Result;
use crate::proto::simple::{FAREWELL, RecvAll, repr};
use crate::stream::{Conn, Stream, recv_all};

/// Serves one client: its 16-octet message in, [`FAREWELL`] back.
pub async fn serve<S: Stream>(conn: &mut Conn<S>, peer: &Peer<'_>) -> Result<()> {
    let mut message = RecvAll::new();
    recv_all(conn, &mut message, |e, after| peer.recv_error(e, after)).await?;
    let message = message
        .message()
        .expect("recv_all returns once all 16 are in");
    peer.say(|| format!("  Incoming 16-octet message: {}", repr(message)));
    conn.write_all(FAREWELL)
        .await
        .map_err(|e| peer.send_error(e, 0))?;
    peer.exchanged();
    peer.say(|| "  Reply sent, socket closed");
    Ok(())
}
