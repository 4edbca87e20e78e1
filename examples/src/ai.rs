//! Enhancing a message's text: the work the seed's "main process" does for the renderer.

use std::time::Duration;

/// Why an enhancement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnhanceError {
    /// The endpoint could not be reached or did not answer in time.
    #[error("the AI endpoint {endpoint} is unavailable: {reason}")]
    Unavailable {
        /// The endpoint.
        endpoint: String,
        /// What happened.
        reason: String,
    },
    /// The endpoint answered something that is not a chat completion.
    #[error("the AI endpoint answered something unexpected: {0}")]
    BadAnswer(String),
}

/// Turns a message's text into its enhanced version. Called on a worker thread (it may
/// block); it must never be called on an event loop.
pub trait Enhancer: Send + Sync {
    /// The enhanced text.
    fn enhance(&self, text: &str) -> Result<String, EnhanceError>;
    /// What it is, for logs.
    fn describe(&self) -> String;
}

/// A deterministic enhancer that needs no network: tidies whitespace, capitalizes the first
/// letter, ends the sentence, and marks the text as enhanced.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalEnhancer;

impl Enhancer for LocalEnhancer {
    fn enhance(&self, text: &str) -> Result<String, EnhanceError> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut tidy = words.join(" ");
        if let Some(first) = tidy.chars().next() {
            let upper: String = first.to_uppercase().collect();
            tidy.replace_range(..first.len_utf8(), &upper);
        }
        if !tidy.ends_with(['.', '!', '?']) {
            tidy.push('.');
        }
        Ok(format!("{tidy} (enhanced)"))
    }

    fn describe(&self) -> String {
        "the built-in local enhancer".into()
    }
}

/// A client for an OpenAI-compatible chat completions endpoint (`POST {base}/v1/chat/completions`),
/// e.g. a local llama.cpp server or Ollama. Plain `http://` endpoints only.
#[derive(Debug, Clone)]
pub struct OpenAiEnhancer {
    base: String,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
}

impl OpenAiEnhancer {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) using `model`.
    pub fn new(base: impl Into<String>, model: impl Into<String>) -> OpenAiEnhancer {
        OpenAiEnhancer {
            base: base.into().trim_end_matches('/').to_owned(),
            model: model.into(),
            api_key: None,
            timeout: Duration::from_secs(60),
        }
    }

    /// Sends `Authorization: Bearer KEY`.
    pub fn with_api_key(mut self, key: impl Into<String>) -> OpenAiEnhancer {
        self.api_key = Some(key.into());
        self
    }

    /// Gives up after `timeout` (connecting included).
    pub fn with_timeout(mut self, timeout: Duration) -> OpenAiEnhancer {
        self.timeout = timeout;
        self
    }
}

impl Enhancer for OpenAiEnhancer {
    fn enhance(&self, text: &str) -> Result<String, EnhanceError> {
        let endpoint = format!("{}/v1/chat/completions", self.base);
        let unavailable = |reason: String| EnhanceError::Unavailable {
            endpoint: endpoint.clone(),
            reason,
        };
        let body = serde_json::json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": "Improve the user's message: fix spelling and grammar, keep its meaning and language. Answer with the improved message only."},
                {"role": "user", "content": text},
            ],
            "temperature": 0.2,
        });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let mut request = agent
            .post(&endpoint)
            .header("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = request
            .send(body.to_string())
            .map_err(|error| unavailable(error.to_string()))?;
        let status = response.status();
        let answer = response
            .body_mut()
            .read_to_string()
            .map_err(|error| unavailable(error.to_string()))?;
        if !status.is_success() {
            return Err(unavailable(format!(
                "HTTP {status}: {}",
                answer.chars().take(200).collect::<String>()
            )));
        }
        let json: serde_json::Value = serde_json::from_str(&answer)
            .map_err(|error| EnhanceError::BadAnswer(error.to_string()))?;
        json["choices"][0]["message"]["content"]
            .as_str()
            .map(|content| content.trim().to_owned())
            .filter(|content| !content.is_empty())
            .ok_or_else(|| EnhanceError::BadAnswer("no choices[0].message.content".into()))
    }

    fn describe(&self) -> String {
        format!("{} at {}", self.model, self.base)
    }
}

/// The enhancer the environment asks for: `CHUM_AI_ENDPOINT` (and `CHUM_AI_MODEL`,
/// `CHUM_AI_KEY`) for an OpenAI-compatible endpoint, otherwise the local one.
pub fn from_env() -> Box<dyn Enhancer> {
    match std::env::var("CHUM_AI_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            let model = std::env::var("CHUM_AI_MODEL").unwrap_or_else(|_| "default".into());
            let mut client = OpenAiEnhancer::new(endpoint, model);
            if let Ok(key) = std::env::var("CHUM_AI_KEY") {
                client = client.with_api_key(key);
            }
            Box::new(client)
        }
        _ => Box::new(LocalEnhancer),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn the_local_enhancer_is_deterministic() {
        let enhancer = LocalEnhancer;
        assert_eq!(
            enhancer.enhance("  hello   world ").unwrap(),
            "Hello world. (enhanced)"
        );
        assert_eq!(enhancer.enhance("ok!").unwrap(), "Ok! (enhanced)");
    }

    /// A one-shot HTTP server answering `body` with `status`.
    fn serve_once(status: &str, body: &str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = vec![0u8; 16 << 10];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(response.as_bytes());
        });
        format!("http://{address}")
    }

    #[test]
    fn the_http_client_reads_a_chat_completion_and_reports_failures() {
        let base = serve_once(
            "200 OK",
            r#"{"choices":[{"message":{"role":"assistant","content":" Better text. "}}]}"#,
        );
        let client = OpenAiEnhancer::new(base, "test").with_timeout(Duration::from_secs(5));
        assert_eq!(client.enhance("bad txt").unwrap(), "Better text.");

        let base = serve_once("500 Internal Server Error", r#"{"error":"overloaded"}"#);
        let client = OpenAiEnhancer::new(base, "test").with_timeout(Duration::from_secs(5));
        assert!(matches!(
            client.enhance("x"),
            Err(EnhanceError::Unavailable { .. })
        ));

        // Nothing listens: a clear error, quickly.
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", free.local_addr().unwrap());
        drop(free);
        let client = OpenAiEnhancer::new(base, "test").with_timeout(Duration::from_secs(2));
        let error = client.enhance("x").unwrap_err();
        assert!(error.to_string().contains("unavailable"), "{error}");
    }
}
