//! Every TwiML answer of every flow, parsed and checked against Twilio's TwiML reference
//! (twilio.com/docs/voice/twiml): the XML declaration first, the Content-Type, `<Response>` as the
//! root, only known verbs with the attributes and values each allows, and the nesting rules
//! (`<Gather>` holds only `<Say>`, `<Play>`, `<Pause>`; `<Dial>` holds `<Number>`s).

mod common;

use common::{Backend, OWNER_PIN, all_day_open_house, start_with};
use doorbell::config::OpenMode;
use doorbell::simulator::Answer;
use roxmltree::Node;

fn attributes<'a>(node: Node<'a, '_>) -> Vec<&'a str> {
    node.attributes().map(|a| a.name()).collect()
}

fn only_attributes(node: Node, allowed: &[&str]) -> Result<(), String> {
    match attributes(node).into_iter().find(|a| !allowed.contains(a)) {
        Some(unknown) => Err(format!(
            "<{}> has no attribute {unknown}",
            node.tag_name().name()
        )),
        None => Ok(()),
    }
}

fn element_children<'a, 'i>(node: Node<'a, 'i>) -> Vec<Node<'a, 'i>> {
    node.children().filter(Node::is_element).collect()
}

fn is_absolute_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

fn is_e164(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn positive_integer(node: Node, name: &str) -> Result<u32, String> {
    node.attribute(name)
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!(
                "<{}> needs a positive integer {name}",
                node.tag_name().name()
            )
        })
}

fn method(node: Node) -> Result<(), String> {
    match node.attribute("method") {
        None | Some("GET") | Some("POST") => Ok(()),
        Some(other) => Err(format!("method {other} is neither GET nor POST")),
    }
}

fn no_children(node: Node) -> Result<(), String> {
    if element_children(node).is_empty() {
        Ok(())
    } else {
        Err(format!("<{}> nests nothing", node.tag_name().name()))
    }
}

/// `<Say>`, `<Play>`, `<Pause>`: allowed at the top level and inside `<Gather>`.
fn check_prompt(node: Node) -> Result<(), String> {
    let text = node.text().unwrap_or_default().trim();
    no_children(node)?;
    match node.tag_name().name() {
        "Say" => {
            only_attributes(node, &["voice", "language", "loop"])?;
            if text.is_empty() {
                return Err("<Say> must say something".into());
            }
            let language = node.attribute("language").unwrap_or("en-US");
            if !language.contains('-') {
                return Err(format!("language {language} is not a tag like en-US"));
            }
        }
        "Play" => {
            only_attributes(node, &["loop", "digits"])?;
            match node.attribute("digits") {
                Some(digits) => {
                    if !text.is_empty() {
                        return Err("<Play digits> has no URL".into());
                    }
                    if digits.is_empty()
                        || !digits
                            .chars()
                            .all(|c| c.is_ascii_digit() || "*#wW".contains(c))
                    {
                        return Err(format!("digits {digits:?} holds only 0-9, *, #, w"));
                    }
                }
                None if is_absolute_url(text) => {}
                None => return Err(format!("<Play> of {text:?}, not a URL")),
            }
        }
        "Pause" => {
            only_attributes(node, &["length"])?;
            positive_integer(node, "length")?;
            if !text.is_empty() {
                return Err("<Pause> is empty".into());
            }
        }
        other => return Err(format!("<{other}> is not a prompt")),
    }
    Ok(())
}

fn check_verb(node: Node) -> Result<(), String> {
    match node.tag_name().name() {
        "Say" | "Play" | "Pause" => check_prompt(node),
        "Gather" => {
            only_attributes(
                node,
                &[
                    "action",
                    "method",
                    "timeout",
                    "finishOnKey",
                    "input",
                    "numDigits",
                    "actionOnEmptyResult",
                ],
            )?;
            method(node)?;
            positive_integer(node, "timeout")?;
            if !node.attribute("action").is_some_and(is_absolute_url) {
                return Err("<Gather> needs an absolute action URL".into());
            }
            if !matches!(
                node.attribute("input"),
                Some("dtmf" | "speech" | "dtmf speech")
            ) {
                return Err("<Gather input> is dtmf, speech or both".into());
            }
            let finish = node.attribute("finishOnKey").unwrap_or("#");
            if !(finish.is_empty() || finish.len() == 1 && "0123456789*#".contains(finish)) {
                return Err(format!("finishOnKey {finish:?} is one key"));
            }
            element_children(node)
                .into_iter()
                .try_for_each(check_prompt)
        }
        "Dial" => {
            only_attributes(
                node,
                &["action", "method", "timeout", "callerId", "answerOnBridge"],
            )?;
            method(node)?;
            let timeout = positive_integer(node, "timeout")?;
            if !(5..=600).contains(&timeout) {
                return Err(format!("Dial timeout {timeout} is outside 5..600"));
            }
            if !node.attribute("action").is_some_and(is_absolute_url) {
                return Err("<Dial> needs an absolute action URL here".into());
            }
            if !matches!(
                node.attribute("answerOnBridge"),
                None | Some("true" | "false")
            ) {
                return Err("answerOnBridge is true or false".into());
            }
            if let Some(caller_id) = node.attribute("callerId")
                && !is_e164(caller_id)
            {
                return Err(format!("callerId {caller_id} is not E.164"));
            }
            let numbers = element_children(node);
            if numbers.is_empty() {
                return Err("<Dial> nests at least one <Number>".into());
            }
            for number in numbers {
                if !number.has_tag_name("Number") {
                    return Err(format!(
                        "<Dial> may not nest <{}>",
                        number.tag_name().name()
                    ));
                }
                no_children(number)?;
                if !is_e164(number.text().unwrap_or_default().trim()) {
                    return Err("<Number> holds an E.164 number".into());
                }
            }
            Ok(())
        }
        "Redirect" => {
            only_attributes(node, &["method"])?;
            method(node)?;
            no_children(node)?;
            if is_absolute_url(node.text().unwrap_or_default().trim()) {
                Ok(())
            } else {
                Err("<Redirect> holds a URL".into())
            }
        }
        "Hangup" => {
            only_attributes(node, &[])?;
            no_children(node)
        }
        "Reject" => {
            only_attributes(node, &["reason"])?;
            no_children(node)?;
            match node.attribute("reason") {
                None | Some("rejected" | "busy") => Ok(()),
                Some(other) => Err(format!(
                    "Reject reason {other} is neither rejected nor busy"
                )),
            }
        }
        other => Err(format!("<{other}> is not a TwiML voice verb")),
    }
}

fn check_document(answer: &Answer) -> Result<(), String> {
    if !answer.content_type.starts_with("text/xml")
        && !answer.content_type.starts_with("application/xml")
    {
        return Err(format!("Content-Type {} is not XML", answer.content_type));
    }
    if !answer
        .body
        .starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
    {
        return Err("the XML declaration does not come first".into());
    }
    let document = roxmltree::Document::parse(&answer.body).map_err(|e| e.to_string())?;
    let root = document.root_element();
    if !root.has_tag_name("Response") || root.attributes().len() != 0 {
        return Err("the root is a bare <Response>".into());
    }
    let verbs = element_children(root);
    for (index, verb) in verbs.iter().enumerate() {
        check_verb(*verb)?;
        let ends_call = verb.has_tag_name("Hangup") || verb.has_tag_name("Reject");
        if ends_call && index + 1 != verbs.len() {
            return Err("nothing may follow <Hangup/> or <Reject/>".into());
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_answer_of_every_flow_is_valid_twiml() {
    let mut answers = Vec::new();
    let doorbell = start_with(Backend::Sqlite, |settings| {
        settings.menu.greeting = "Welcome to <Tom & Jerry's> \"house\".".into();
    })
    .await;
    for (keys, dial_answers) in [
        (vec!["1"], vec![true]),
        (vec!["2"], vec![false, false]),
        (vec![OWNER_PIN], vec![]),
        (vec!["7", "0000"], vec![]),
        (vec![], vec![]),
        (vec!["1111", "2222", "3333", OWNER_PIN], vec![]),
    ] {
        answers.extend(doorbell.call(&keys, &dial_answers).await.documents);
    }
    let first = roxmltree::Document::parse(&answers[0].body)
        .unwrap()
        .descendants()
        .find(|n| n.has_tag_name("Say"))
        .unwrap()
        .text()
        .unwrap()
        .to_owned();
    assert_eq!(
        first, "Welcome to <Tom & Jerry's> \"house\".",
        "text is escaped and comes back intact"
    );

    let tone = start_with(Backend::Sqlite, |settings| {
        settings.open_mode = OpenMode::Tone;
        settings.menu.audio_url = Some("https://cdn.example.com/menu.mp3".into());
    })
    .await;
    answers.extend(tone.call(&[OWNER_PIN], &[]).await.documents);
    let rejecting = start_with(Backend::Sqlite, |settings| {
        settings.allowed_callers = vec!["+15550001111".into()]
    })
    .await;
    answers.extend(rejecting.call(&[], &[]).await.documents);
    let open_house = start_with(Backend::Sqlite, |settings| {
        settings.open_house = vec![all_day_open_house("party")];
    })
    .await;
    answers.extend(open_house.call(&[], &[]).await.documents);

    assert!(answers.len() >= 15, "{} answers", answers.len());
    let verbs: std::collections::BTreeSet<String> = answers
        .iter()
        .flat_map(|a| {
            let document = roxmltree::Document::parse(&a.body).unwrap();
            document
                .descendants()
                .filter(Node::is_element)
                .map(|n| n.tag_name().name().to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    for verb in [
        "Say", "Play", "Pause", "Gather", "Dial", "Number", "Hangup", "Reject",
    ] {
        assert!(
            verbs.contains(verb),
            "the flows exercise <{verb}>: {verbs:?}"
        );
    }
    for answer in &answers {
        if let Err(problem) = check_document(answer) {
            panic!(
                "invalid TwiML from {}: {problem}\n{}",
                answer.url, answer.body
            );
        }
    }
}

#[test]
fn the_checker_catches_invalid_documents() {
    let answer = |body: &str| Answer {
        url: "https://door.example.com/twilio/voice".into(),
        content_type: "text/xml; charset=utf-8".into(),
        body: format!(r#"<?xml version="1.0" encoding="UTF-8"?>{body}"#),
    };
    for bad in [
        "<Response><Gather input=\"dtmf\" action=\"https://x.test/\" timeout=\"5\"><Dial>+15550000001</Dial></Gather></Response>",
        "<Response><Hangup/><Say>late</Say></Response>",
        "<Response><Play digits=\"ww9\">https://x.test/a.wav</Play></Response>",
        "<Response><Dial timeout=\"20\" action=\"https://x.test/\"><Number>5550000001</Number></Dial></Response>",
        "<Response><Say voice=\"alice\" colour=\"red\">hi</Say></Response>",
        "<Response><Speak>hi</Speak></Response>",
        "<Reply><Hangup/></Reply>",
    ] {
        assert!(check_document(&answer(bad)).is_err(), "{bad}");
    }
    assert!(
        check_document(&answer(
            "<Response><Say language=\"en-US\">hi</Say><Hangup/></Response>"
        ))
        .is_ok()
    );
}
