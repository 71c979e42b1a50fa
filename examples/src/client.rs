//! A minimal HTTP/1.1 client over one keep-alive connection: enough for the
//! load tester to drive the example server without another dependency.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One connection to `host:port`.
#[derive(Debug)]
pub struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    /// Connects to `address` (`host:port`).
    ///
    /// # Errors
    ///
    /// When the connection fails.
    pub async fn open(address: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            host: address.to_owned(),
        })
    }

    /// Sends one request and reads the whole response: (status, body).
    ///
    /// # Errors
    ///
    /// On I/O errors or a response without `Content-Length`.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let head = self.head(method, path, content_type, body.len(), "");
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        self.read_response().await
    }

    /// Sends one request with `Expect: 100-continue`, as HTTP clients do for
    /// large bodies: the body goes only once the server has answered
    /// `100 Continue`, so a request the server refuses from its head alone
    /// (503 on a full queue) never uploads its body. (status, body, whether
    /// the body was sent); a connection whose body was not sent is not
    /// reused.
    ///
    /// # Errors
    ///
    /// On I/O errors or a response without `Content-Length`.
    pub async fn request_expecting_continue(
        &mut self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>, bool)> {
        let head = self.head(
            method,
            path,
            content_type,
            body.len(),
            "Expect: 100-continue\r\n",
        );
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        let status = self.read_status().await?;
        if status != 100 {
            let (status, answer) = self.read_rest(status).await?;
            return Ok((status, answer, false));
        }
        self.read_rest(status).await?;
        self.stream.get_mut().write_all(body).await?;
        let (status, answer) = self.read_response().await?;
        Ok((status, answer, true))
    }

    fn head(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        length: usize,
        extra: &str,
    ) -> String {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n{extra}\r\n",
            self.host
        )
    }

    async fn read_status(&mut self) -> std::io::Result<u16> {
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(&line))?;
        Ok(status)
    }

    async fn read_response(&mut self) -> std::io::Result<(u16, Vec<u8>)> {
        let status = self.read_status().await?;
        self.read_rest(status).await
    }

    /// Reads the headers after a status line, then the body (none for 1xx).
    async fn read_rest(&mut self, status: u16) -> std::io::Result<(u16, Vec<u8>)> {
        let mut line = String::new();
        let mut length = None;
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(invalid("closed inside the headers"));
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().ok();
            }
        }
        if (100..200).contains(&status) {
            return Ok((status, Vec::new()));
        }
        let mut body = vec![0; length.ok_or_else(|| invalid("no content-length"))?];
        self.stream.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("bad HTTP response: {what}"),
    )
}
