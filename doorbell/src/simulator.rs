//! `doorbell call`: plays Twilio's part in a call against a running doorbell, without a phone.
//!
//! It sends the webhooks Twilio would send — the same parameters, form-encoded, signed with the
//! auth token over the public URL — and follows the TwiML it gets back: `<Gather>` presses the next
//! keys of the script (or times out when there are none left), `<Dial>` rings the resident, who
//! answers or not as the script says, `<Play>` of digits or of a tone file opens the door when it
//! carries the open key (a file is decoded and listened to for DTMF), `<Redirect>`, `<Hangup>` and
//! `<Reject>` do what they say. Every step goes into a [`Transcript`].

use std::collections::VecDeque;
use std::fmt;

use url::Url;

use crate::config::Secret;
use crate::signature;
use crate::tone::{self, Wav};

/// Enough for any real call; stops a service that redirects forever.
const MAX_REQUESTS: usize = 25;

/// Where the doorbell is and how to sign for it.
#[derive(Debug, Clone)]
pub struct Simulator {
    client: reqwest::Client,
    /// Where the doorbell actually listens, e.g. `http://127.0.0.1:8090`.
    pub target: String,
    /// The URL Twilio uses, as configured in the doorbell (signatures are over it).
    pub public_url: String,
    pub auth_token: Secret,
    pub account_sid: String,
    /// The key that opens the door.
    pub open_key: char,
}

/// What happens during one call.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// The calling number (the intercom's).
    pub from: String,
    /// The Twilio number called.
    pub to: String,
    /// Keys pressed at each `<Gather>`, in order; a `<Gather>` after the last gets no input.
    pub keys: VecDeque<String>,
    /// Whether each `<Dial>` is answered, in order; a `<Dial>` after the last is not.
    pub answers: VecDeque<bool>,
}

/// One thing that happened during the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Webhook {
        url: String,
        status: u16,
    },
    Refused {
        status: u16,
        body: String,
    },
    Say(String),
    PlayUrl(String),
    PlayDigits(String),
    /// DTMF keys heard in a played file.
    Heard(String),
    Pressed(String),
    NoInput,
    Dial {
        numbers: Vec<String>,
        answered: bool,
    },
    Pause(u32),
    Redirect(String),
    Hangup,
    Reject,
    DoorOpened,
    Error(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Webhook { url, status } => write!(f, "→ POST {url} ({status})"),
            Self::Refused { status, body } => write!(
                f,
                "✗ the doorbell refused the webhook: {status} {}",
                body.trim()
            ),
            Self::Say(text) => write!(f, "  says: {text}"),
            Self::PlayUrl(url) => write!(f, "  plays {url}"),
            Self::PlayDigits(digits) => write!(f, "  plays DTMF {digits}"),
            Self::Heard(keys) => write!(f, "  (the file holds the DTMF of {keys:?})"),
            Self::Pressed(keys) => write!(f, "  caller presses {keys}"),
            Self::NoInput => write!(f, "  caller presses nothing"),
            Self::Dial { numbers, answered } => write!(
                f,
                "  rings {} … {}",
                numbers.join(", "),
                if *answered { "answered" } else { "no answer" }
            ),
            Self::Pause(seconds) => write!(f, "  pauses {seconds} s"),
            Self::Redirect(url) => write!(f, "  redirected to {url}"),
            Self::Hangup => write!(f, "  hangs up"),
            Self::Reject => write!(f, "  rejects the call"),
            Self::DoorOpened => write!(f, "*** DOOR OPENED ***"),
            Self::Error(message) => write!(f, "✗ {message}"),
        }
    }
}

/// Everything that happened, in order.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    pub call_sid: String,
    pub steps: Vec<Step>,
    /// Each TwiML answer: the URL asked, its Content-Type and its body.
    pub documents: Vec<Answer>,
}

/// One answer of the doorbell, kept as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub url: String,
    pub content_type: String,
    pub body: String,
}

impl Transcript {
    pub fn door_opened(&self) -> bool {
        self.steps.contains(&Step::DoorOpened)
    }

    /// The numbers rung, in order.
    pub fn dialed(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Step::Dial { numbers, .. } => Some(numbers.join(",")),
                _ => None,
            })
            .collect()
    }

    /// Everything said, in order.
    pub fn said(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Step::Say(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The status of the first refused webhook.
    pub fn refused(&self) -> Option<u16> {
        self.steps.iter().find_map(|step| match step {
            Step::Refused { status, .. } => Some(*status),
            _ => None,
        })
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "call {}", self.call_sid)?;
        for step in &self.steps {
            writeln!(f, "{step}")?;
        }
        Ok(())
    }
}

/// The next webhook to send.
struct Pending {
    url: String,
    extra: Vec<(String, String)>,
}

impl Simulator {
    pub fn new(target: &str, public_url: &str, auth_token: Secret, account_sid: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            target: target.trim_end_matches('/').to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            auth_token,
            account_sid: account_sid.to_owned(),
            open_key: '9',
        }
    }

    /// Places a call and follows it to the end.
    pub async fn call(&self, mut script: Script) -> Transcript {
        let mut transcript = Transcript {
            call_sid: format!("CA{:032x}", rand::random::<u128>()),
            ..Transcript::default()
        };
        let mut pending = Some(Pending {
            url: format!("{}/twilio/voice", self.public_url),
            // The SHAKEN/STIR verdict on the caller ID comes with the incoming call.
            extra: vec![("StirVerstat".into(), "TN-Validation-Passed-A".into())],
        });
        let mut requests = 0;
        while let Some(next) = pending.take() {
            requests += 1;
            if requests > MAX_REQUESTS {
                transcript.steps.push(Step::Error(format!(
                    "more than {MAX_REQUESTS} webhooks; giving up"
                )));
                break;
            }
            let status = if requests == 1 {
                "ringing"
            } else {
                "in-progress"
            };
            let document = match self
                .webhook(&transcript.call_sid, status, &script, &next)
                .await
            {
                Ok((code, content_type, body)) if (200..300).contains(&code) => {
                    transcript.steps.push(Step::Webhook {
                        url: next.url.clone(),
                        status: code,
                    });
                    transcript.documents.push(Answer {
                        url: next.url.clone(),
                        content_type,
                        body: body.clone(),
                    });
                    body
                }
                Ok((code, _, body)) => {
                    transcript.steps.push(Step::Refused { status: code, body });
                    break;
                }
                Err(error) => {
                    transcript.steps.push(Step::Error(error));
                    break;
                }
            };
            match self
                .follow(&document, &next.url, &mut script, &mut transcript)
                .await
            {
                Ok(Some(following)) => pending = Some(following),
                Ok(None) => {}
                Err(error) => transcript.steps.push(Step::Error(error)),
            }
        }
        transcript
    }

    /// Plays one TwiML document; returns the webhook it leads to, if any.
    async fn follow(
        &self,
        document: &str,
        base: &str,
        script: &mut Script,
        transcript: &mut Transcript,
    ) -> Result<Option<Pending>, String> {
        let xml = roxmltree::Document::parse(document)
            .map_err(|e| format!("the answer is not XML: {e}"))?;
        let root = xml.root_element();
        if !root.has_tag_name("Response") {
            return Err(format!(
                "the answer's root is <{}>, not <Response>",
                root.tag_name().name()
            ));
        }
        for verb in root.children().filter(roxmltree::Node::is_element) {
            let text = verb.text().unwrap_or_default().trim().to_owned();
            match verb.tag_name().name() {
                "Say" | "Play" | "Pause" => self.prompt(verb, base, transcript).await?,
                "Gather" => {
                    for prompt in verb.children().filter(roxmltree::Node::is_element) {
                        self.prompt(prompt, base, transcript).await?;
                    }
                    match script.keys.pop_front() {
                        Some(keys) => {
                            transcript.steps.push(Step::Pressed(keys.clone()));
                            let finished_on = if keys.len() > 1 { "#" } else { "" };
                            return Ok(Some(Pending {
                                url: resolve(base, verb.attribute("action").unwrap_or(""))?,
                                extra: vec![
                                    ("Digits".into(), keys),
                                    ("FinishedOnKey".into(), finished_on.into()),
                                    ("msg".into(), "Gather End".into()),
                                ],
                            }));
                        }
                        None => transcript.steps.push(Step::NoInput),
                    }
                }
                "Dial" => {
                    let numbers: Vec<String> = verb
                        .children()
                        .filter(|n| n.has_tag_name("Number"))
                        .map(|n| n.text().unwrap_or_default().trim().to_owned())
                        .collect();
                    let answered = script.answers.pop_front().unwrap_or(false);
                    transcript.steps.push(Step::Dial { numbers, answered });
                    if let Some(action) = verb.attribute("action") {
                        let mut extra = vec![
                            (
                                "DialCallSid".into(),
                                format!("CA{:032x}", rand::random::<u128>()),
                            ),
                            (
                                "DialCallStatus".into(),
                                if answered { "completed" } else { "no-answer" }.into(),
                            ),
                            ("DialBridged".into(), answered.to_string()),
                        ];
                        if answered {
                            extra.push(("DialCallDuration".into(), "42".into()));
                        }
                        return Ok(Some(Pending {
                            url: resolve(base, action)?,
                            extra,
                        }));
                    }
                }
                "Redirect" => {
                    let url = resolve(base, &text)?;
                    transcript.steps.push(Step::Redirect(url.clone()));
                    return Ok(Some(Pending {
                        url,
                        extra: Vec::new(),
                    }));
                }
                "Hangup" => {
                    transcript.steps.push(Step::Hangup);
                    return Ok(None);
                }
                "Reject" => {
                    transcript.steps.push(Step::Reject);
                    return Ok(None);
                }
                other => return Err(format!("unknown verb <{other}>")),
            }
        }
        // Twilio hangs up after the last verb.
        transcript.steps.push(Step::Hangup);
        Ok(None)
    }

    async fn prompt(
        &self,
        node: roxmltree::Node<'_, '_>,
        base: &str,
        transcript: &mut Transcript,
    ) -> Result<(), String> {
        let text = node.text().unwrap_or_default().trim().to_owned();
        match node.tag_name().name() {
            "Say" => transcript.steps.push(Step::Say(text)),
            "Pause" => {
                let seconds = node
                    .attribute("length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(1);
                transcript.steps.push(Step::Pause(seconds));
            }
            "Play" => match node.attribute("digits") {
                Some(digits) => {
                    transcript.steps.push(Step::PlayDigits(digits.to_owned()));
                    if digits.contains(self.open_key) {
                        transcript.steps.push(Step::DoorOpened);
                    }
                }
                None => {
                    let url = resolve(base, &text)?;
                    transcript.steps.push(Step::PlayUrl(url.clone()));
                    let keys = self.listen(&url).await?;
                    let opens = keys.contains(self.open_key);
                    transcript.steps.push(Step::Heard(keys));
                    if opens {
                        transcript.steps.push(Step::DoorOpened);
                    }
                }
            },
            other => return Err(format!("<{other}> is not allowed here")),
        }
        Ok(())
    }

    /// Fetches an audio file and returns the DTMF keys in it.
    async fn listen(&self, url: &str) -> Result<String, String> {
        let response = self
            .client
            .get(self.on_target(url))
            .send()
            .await
            .map_err(|e| format!("cannot fetch {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url} answered {}", response.status()));
        }
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let wav = Wav::parse(&bytes).map_err(|e| format!("{url}: {e}"))?;
        Ok(tone::detect_keys(&wav.samples, wav.sample_rate))
    }

    /// A public URL rewritten to where the doorbell actually listens.
    fn on_target(&self, url: &str) -> String {
        match url.strip_prefix(&self.public_url) {
            Some(rest) => format!("{}{rest}", self.target),
            None => url.to_owned(),
        }
    }

    /// Sends one webhook; answers its status, Content-Type and body.
    async fn webhook(
        &self,
        call_sid: &str,
        call_status: &str,
        script: &Script,
        pending: &Pending,
    ) -> Result<(u16, String, String), String> {
        let mut params: Vec<(String, String)> = [
            ("AccountSid", self.account_sid.as_str()),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", call_sid),
            ("CallStatus", call_status),
            ("Called", &script.to),
            ("Caller", &script.from),
            ("Direction", "inbound"),
            ("From", &script.from),
            ("To", &script.to),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        // Twilio's look-up of where both numbers are, sent with every request; it often knows
        // only the country.
        for party in ["Called", "Caller", "From", "To"] {
            for (field, value) in [("City", ""), ("State", ""), ("Zip", ""), ("Country", "US")] {
                params.push((format!("{party}{field}"), value.to_owned()));
            }
        }
        params.extend(pending.extra.iter().cloned());
        let signature = signature::sign(self.auth_token.expose(), &pending.url, &params);
        let response = self
            .client
            .post(self.on_target(&pending.url))
            .header(signature::HEADER, signature)
            .header(reqwest::header::USER_AGENT, "TwilioProxy/1.1")
            .form(&params)
            .send()
            .await
            .map_err(|e| format!("cannot reach the doorbell at {}: {e}", self.target))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, content_type, body))
    }
}

/// `reference` resolved against the URL of the document it came from, as Twilio does.
fn resolve(base: &str, reference: &str) -> Result<String, String> {
    Url::parse(base)
        .and_then(|base| base.join(reference))
        .map(String::from)
        .map_err(|e| format!("bad URL {reference:?}: {e}"))
}
