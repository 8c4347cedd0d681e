//! [`PreSplit`]: how a byte-level BPE vocabulary cuts text into words before merging,
//! chosen by llama.cpp's name for it (`tokenizer.ggml.pre`), with the options llama.cpp
//! sets for each name (`llama_vocab::impl::load`). The patterns are llama.cpp's
//! (`LLAMA_VOCAB_PRE_TYPE_*` in `llama-vocab.cpp`), applied one after another to every
//! piece the previous one left, text between matches kept as pieces of its own.

use fancy_regex::Regex;

use crate::{Error, Result};

/// GPT-2: contractions, letters, digits, other symbols, each with an optional space.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3: case-insensitive contractions, up to three digits, newlines apart.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2: as Llama 3 with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 3.5: as Qwen 2 with combining marks inside words.
const QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// DeepSeek V3 and relatives.
const DEEPSEEK3: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;
/// DeepSeek LLM's letters, as listed in its tokenizer (code points escaped, so that no
/// editor normalizes them).
const DEEPSEEK_LLM_LETTERS: &str = r"\s?[A-Za-z\x{b5}\x{c0}-\x{d6}\x{d8}-\x{f6}\x{f8}-\x{1ba}\x{1bc}-\x{1bf}\x{1c4}-\x{293}\x{295}-\x{2af}\x{370}-\x{373}\x{376}\x{377}\x{37b}-\x{37d}\x{37f}\x{386}\x{388}-\x{38a}\x{38c}\x{38e}-\x{3a1}\x{3a3}-\x{3f5}\x{3f7}-\x{481}\x{48a}-\x{52f}\x{531}-\x{556}\x{10a0}-\x{10c5}\x{13a0}-\x{13f5}\x{13f8}-\x{13fd}\x{1c90}-\x{1cba}\x{1cbd}-\x{1cbf}\x{1d00}-\x{1d2b}\x{1d6b}-\x{1d77}\x{1d79}-\x{1d9a}\x{1e00}-\x{1f15}\x{1f18}-\x{1f1d}\x{1f20}-\x{1f45}\x{1f48}-\x{1f4d}\x{1f50}-\x{1f57}\x{1f59}\x{1f5b}\x{1f5d}\x{1f5f}-\x{1f7d}\x{1f80}-\x{1fb4}\x{1fb6}-\x{1fbc}\x{1fbe}\x{1fc2}-\x{1fc4}\x{1fc6}-\x{1fcc}\x{1fd0}-\x{1fd3}\x{1fd6}-\x{1fdb}\x{1fe0}-\x{1fec}\x{1ff2}-\x{1ff4}\x{1ff6}-\x{1ffc}\x{2102}\x{2107}\x{210a}-\x{2113}\x{2115}\x{2119}-\x{211d}\x{2124}\x{2126}\x{2128}\x{212a}-\x{212d}\x{212f}-\x{2134}\x{2139}\x{213c}-\x{213f}\x{2145}-\x{2149}\x{214e}\x{2183}\x{2184}\x{2c00}-\x{2c7b}\x{2c7e}-\x{2ce4}\x{2ceb}-\x{2cee}\x{2cf2}\x{2cf3}\x{a640}-\x{a66d}\x{a680}-\x{a69b}\x{a722}-\x{a76f}\x{a771}-\x{a787}\x{a78b}-\x{a78e}\x{ab70}-\x{abbf}\x{fb00}-\x{fb06}\x{fb13}-\x{fb17}\x{ff21}-\x{ff3a}\x{ff41}-\x{ff5a}\x{10400}-\x{1044f}\x{104b0}-\x{104d3}\x{104d8}-\x{104fb}\x{10c80}-\x{10cb2}\x{10cc0}-\x{10cf2}\x{118a0}-\x{118df}\x{1e900}-\x{1e943}]+";
/// llama.cpp's split for a vocabulary that names none (`LLAMA_VOCAB_PRE_TYPE_DEFAULT`).
const DEFAULT: &[&str] = &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"];

/// A byte-level BPE pre-tokenizer and the options llama.cpp sets with it.
#[derive(Clone, Debug)]
pub(crate) struct PreSplit {
    patterns: Vec<Regex>,
    /// Map bytes to GPT-2's printable characters before merging (false for vocabularies
    /// that store raw UTF-8 with `▁` for spaces, such as Gemma 4's).
    pub(crate) byte_encode: bool,
    /// Write spaces as `▁` before splitting (Gemma 4).
    pub(crate) escape_whitespaces: bool,
    /// Take a word that is a token as it is, without merging (Llama 3).
    pub(crate) ignore_merges: bool,
    /// Remove the spaces before `?!.,` and some contractions when decoding
    /// (`clean_up_tokenization_spaces`).
    pub(crate) clean_spaces: bool,
    /// Add BOS by default, without `tokenizer.ggml.add_bos_token`.
    pub(crate) add_bos: bool,
    /// A word of newlines only is taken as it is when it is a token (Gemma 4).
    pub(crate) whole_newlines: bool,
}

impl PreSplit {
    /// The pre-tokenizer llama.cpp uses for `name` (its `tokenizer.ggml.pre`), or `None`
    /// for one not supported here.
    ///
    /// # Errors
    /// [`Error::InvalidTokenizer`] if a pattern does not compile (a bug, tested).
    pub(crate) fn by_name(name: &str) -> Result<Option<Self>> {
        let mut split = PreSplit {
            patterns: Vec::new(),
            byte_encode: true,
            escape_whitespaces: false,
            ignore_merges: false,
            clean_spaces: true,
            add_bos: false,
            whole_newlines: false,
        };
        let patterns: &[&str] = match name {
            "default" => DEFAULT,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => {
                split.ignore_merges = true;
                split.add_bos = true;
                &[LLAMA3]
            }
            "dbrx" | "smaug-bpe" => &[LLAMA3],
            "gpt-2" | "gpt2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "exaone4" | "mpt" | "olmo"
            | "jais" => &[GPT2],
            "trillion" | "granite-docling" => {
                split.clean_spaces = false;
                &[GPT2]
            }
            "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
                &[r"\p{N}", GPT2]
            }
            "smollm" | "command-r" => {
                split.clean_spaces = false;
                &[r"\p{N}", GPT2]
            }
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open" => {
                split.clean_spaces = false;
                &[QWEN2]
            }
            "megrez" | "stablelm2" => &[QWEN2],
            "qwen35" => {
                split.clean_spaces = false;
                &[QWEN35]
            }
            "falcon" => &[
                r"[\p{P}\$\+<=>\^~\|`]+",
                r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
                "[0-9][0-9][0-9]",
            ],
            "deepseek-llm" => {
                split.clean_spaces = false;
                &[
                    "[\r\n]",
                    DEEPSEEK_LLM_LETTERS,
                    r"\s?[!-/:-~\x{ff01}-\x{ff0f}\x{ff1a}-\x{ff5e}\x{2018}-\x{201f}\x{3000}-\x{3002}]+",
                    r"\s+$",
                    r"[\x{4e00}-\x{9fa5}\x{800}-\x{4e00}\x{ac00}-\x{d7ff}]+",
                    r"\p{N}+",
                ]
            }
            "deepseek-coder" => {
                split.clean_spaces = false;
                &[
                    "[\r\n]",
                    r"\s?\p{L}+",
                    r"\s?\p{P}+",
                    r"[\x{4e00}-\x{9fa5}\x{800}-\x{4e00}\x{ac00}-\x{d7ff}]+",
                    r"\p{N}",
                ]
            }
            "deepseek-v3" | "hunyuan-dense" | "joyai-llm" | "hy_v4" => {
                split.clean_spaces = false;
                &[
                    r"\p{N}{1,3}",
                    r"[\x{4e00}-\x{9fa5}\x{3040}-\x{309f}\x{30a0}-\x{30ff}]+",
                    DEEPSEEK3,
                ]
            }
            "gemma4" | "granite-embed-multi-311m" => {
                split.byte_encode = false;
                split.escape_whitespaces = true;
                split.add_bos = true;
                split.whole_newlines = true;
                &["[^\n]+|[\n]+"]
            }
            _ => return Ok(None),
        };
        for pattern in patterns {
            let regex = Regex::new(pattern).map_err(|e| Error::InvalidTokenizer {
                key: "tokenizer.ggml.pre",
                reason: format!("{name}: pattern {pattern:?} does not compile: {e}"),
            })?;
            split.patterns.push(regex);
        }
        Ok(Some(split))
    }

    /// Cuts `text` into words, appending their byte ranges to `words` (every byte of
    /// `text` lands in exactly one word).
    ///
    /// # Errors
    /// [`Error::TextSplit`] if a pattern gives up on the text (the regex engine's
    /// backtracking limit).
    pub(crate) fn split(&self, text: &str, words: &mut Vec<(usize, usize)>) -> Result<()> {
        words.clear();
        if text.is_empty() {
            return Ok(());
        }
        words.push((0, text.len()));
        let mut next = Vec::new();
        for pattern in &self.patterns {
            next.clear();
            for &(start, end) in words.iter() {
                let mut at = start;
                for found in pattern.find_iter(&text[start..end]) {
                    let found = found.map_err(|e| Error::TextSplit { reason: e.to_string() })?;
                    let (s, e) = (start + found.start(), start + found.end());
                    if s > at {
                        next.push((at, s));
                    }
                    if e > s {
                        next.push((s, e));
                    }
                    at = e;
                }
                if at < end {
                    next.push((at, end));
                }
            }
            std::mem::swap(words, &mut next);
        }
        Ok(())
    }
}

/// GPT-2's map from bytes to printable characters: printable Latin-1 bytes stand for
/// themselves, the others take the code points from U+0100 on, in byte order.
pub(crate) fn byte_chars() -> [char; 256] {
    let mut chars = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        chars[usize::from(b)] = if printable {
            char::from(b)
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('\0')
        };
    }
    chars
}

/// The inverse of [`byte_chars`], indexed by code point (all of them are below U+0144).
pub(crate) fn char_bytes(chars: &[char; 256]) -> Vec<Option<u8>> {
    let mut bytes = vec![None; 0x144];
    for (b, &c) in (0..=255u8).zip(chars) {
        bytes[c as usize] = Some(b);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(name: &str, text: &str) -> Vec<String> {
        let split = PreSplit::by_name(name).unwrap().unwrap();
        let mut words = Vec::new();
        split.split(text, &mut words).unwrap();
        words.iter().map(|&(s, e)| text[s..e].to_owned()).collect()
    }

    #[test]
    fn every_pattern_compiles() {
        for name in ["default", "llama-bpe", "gpt-2", "smollm", "qwen2", "qwen35", "falcon"] {
            assert!(PreSplit::by_name(name).unwrap().is_some(), "{name}");
        }
        for name in ["deepseek-llm", "deepseek-coder", "deepseek-v3", "gemma4", "dbrx"] {
            assert!(PreSplit::by_name(name).unwrap().is_some(), "{name}");
        }
        assert!(PreSplit::by_name("no-such-split").unwrap().is_none());
    }

    #[test]
    fn llama3_splits_digits_in_threes_and_keeps_trailing_spaces() {
        assert_eq!(words("llama-bpe", "12345 ab  c"), ["123", "45", " ab", " ", " c"]);
        assert_eq!(words("smollm", "12 ab"), ["1", "2", " ab"]);
    }

    #[test]
    fn byte_chars_is_gpt2s_map() {
        let chars = byte_chars();
        assert_eq!(chars[usize::from(b' ')], 'Ġ');
        assert_eq!(chars[usize::from(b'\n')], 'Ċ');
        assert_eq!(chars[usize::from(b'a')], 'a');
        // The soft hyphen is the 68th byte without a printable form.
        assert_eq!(chars[0xAD], 'Ń');
    }
}
