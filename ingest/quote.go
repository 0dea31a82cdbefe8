package ingest

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Quote and signature trimming: the text of a reply without the quoted
// history under it and without the signature. Only replies are trimmed
// (replyText): the mail that opens a ticket is often a forward whose
// history is the request, and a reply whose subject says it forwards
// (Fw:, Fwd:, WG:, TR:, RV:, I:) brings something new to the ticket the
// same way. The whole text is kept beside the trimmed one.

// replyText is the text stored for m: for a reply, the new part of its
// text and the whole text beside it (full is "" when nothing was cut).
func replyText(m *Mail, reply bool) (text, full string) {
	if !reply || forwardSubject.MatchString(m.Subject) {
		return m.Text, ""
	}
	if t, ok := trimReply(m.Text); ok {
		return t, m.Text
	}
	return m.Text, ""
}

var forwardSubject = regexp.MustCompile(`(?i)^\s*(fwd?|wg|tr|rv|i|enc|doorst|vs|vl)\s*:`)

// maxQuoteLine is the longest line (or joined attribution) the trimmer
// matches: attributions and header lines are short, and longer lines
// cost matching time for nothing.
const maxQuoteLine = 400

// trimReply returns the new part of a reply's text: cut before the first
// quoted history it recognises (an "On ... wrote:" attribution in one of
// a dozen languages, possibly wrapped over up to three lines; Outlook's
// "-----Original Message-----" or its From/Sent/To/Subject block, also
// localised, with the line of underscores of Outlook on the web above
// it; a block of '>' lines that ends the text), then before a signature
// ("-- " line, "Sent from my iPhone" and its translations). Inline
// replies (answers between '>' lines) keep their quotes. ok is false when
// nothing was cut, or when the cut would leave nothing: then the text
// stays whole. The cost is linear in the text.
func trimReply(text string) (string, bool) {
	lines := strings.Split(text, "\n")
	cut, forward := historyStart(lines)
	if forward {
		return text, false
	}
	cut = trailingQuote(lines[:cut])
	if cut < len(lines) {
		cut = backOverSeparators(lines, cut)
	}
	cut = signatureStart(lines[:cut])
	if cut == len(lines) {
		return text, false
	}
	out := strings.TrimRightFunc(strings.Join(lines[:cut], "\n"), unicode.IsSpace)
	if strings.TrimSpace(out) == "" {
		return text, false
	}
	return out, true
}

// historyStart is the index of the first line that starts a quoted
// history, len(lines) if none. forward reports a forwarded message met
// first: what follows it is new to the ticket, so nothing is cut.
func historyStart(lines []string) (start int, forward bool) {
	var inline []bool // inline[i]: lines[i:] answer between quotes; computed once, when needed
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || len(l) > maxQuoteLine || l[0] == '>' {
			continue
		}
		marker := l[0] == '-' || l[len(l)-1] == ':' // the regular expressions only where they may match
		if marker && forwardMarker.MatchString(l) {
			return len(lines), true
		}
		if (l[0] == '-' && originalMessage.MatchString(l)) || headerBlockAt(lines, i) {
			return i, false
		}
		if n := attributionAt(lines, i); n > 0 {
			if inline == nil {
				inline = inlineReplies(lines)
			}
			if !inline[i+n] {
				return i, false
			}
		}
	}
	return len(lines), false
}

// forwardMarker is the line above a forwarded message (Gmail, Apple
// Mail, Thunderbird), in the languages of their installations.
var forwardMarker = regexp.MustCompile(`(?i)^(-{3,}\s*(forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada|vidarebefordrat meddelande|videresendt meddelelse|wiadomość przekazana|välitetty viesti)\s*-{3,}|-{3,}\s*forwarded message\s*-{3,}|begin forwarded message:|anfang der weitergeleiteten nachricht:|début du message réexpédié\s*:|inizio messaggio inoltrato:|begin doorgestuurd bericht:|mensaje reenviado:)$`)

// originalMessage is Outlook's (and Outlook Express's, and old
// Thunderbird's) separator line, in the languages of its installations.
var originalMessage = regexp.MustCompile(`(?i)^-{3,}\s*(original message|ursprüngliche nachricht|originalnachricht|message d'origine|mensaje original|messaggio originale|oorspronkelijk bericht|originalmeddelande|oprindelig meddelelse|opprinnelig melding|alkuperäinen viesti|wiadomość oryginalna|oryginalna wiadomość|mensagem original|původní zpráva|исходное сообщение)\s*-{3,}$`)

var (
	fromLabels = labels("from", "von", "de", "da", "van", "från", "fra", "od", "lähettäjä", "от")
	sentLabels = labels("sent", "date", "gesendet", "datum", "envoyé", "date d'envoi", "inviato", "data",
		"verzonden", "enviado", "enviada", "enviado el", "enviada em", "fecha", "skickat", "sendt", "wysłano",
		"wysłane", "lähetetty", "odesláno", "отправлено")
	subjectLabels = labels("subject", "betreff", "objet", "oggetto", "onderwerp", "asunto", "assunto", "ämne",
		"emne", "temat", "aihe", "předmět", "тема")
)

func labels(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// label is the lower-cased header label line l starts with, as Outlook
// writes a quoted mail's header ("From: ...", "*Von:* ...", "De : ..."):
// up to 24 letters and blanks, a colon, then something; "" if none.
func label(l string) string {
	l = strings.TrimSpace(l)
	i := strings.IndexByte(l, ':')
	if i < 0 || i > 32 || strings.TrimLeft(l[i+1:], "* \t") == "" {
		return ""
	}
	name := strings.TrimSpace(strings.Trim(l[:i], "*"))
	if name == "" || utf8.RuneCountInString(name) > 24 {
		return ""
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && r != ' ' {
			return ""
		}
	}
	return strings.ToLower(name)
}

// headerBlockAt reports whether lines[i] starts the header block of a
// quoted mail: a From label, then within the next six lines a Sent (or
// Date) label and a Subject label.
func headerBlockAt(lines []string, i int) bool {
	if !fromLabels[label(lines[i])] {
		return false
	}
	var sent, subject bool
	for _, l := range lines[i+1 : min(len(lines), i+7)] {
		switch lb := label(l); {
		case sentLabels[lb]:
			sent = true
		case subjectLabels[lb]:
			subject = true
		}
	}
	return sent && subject
}

// attributionAt returns how many lines (1 to 3) from lines[i] make an
// attribution line, 0 if none does.
func attributionAt(lines []string, i int) int {
	size := 0
	for n := 1; n <= 3 && i+n <= len(lines); n++ {
		l := strings.TrimSpace(lines[i+n-1])
		if l == "" || l[0] == '>' {
			return 0
		}
		if size += len(l) + 1; size > maxQuoteLine {
			return 0
		}
		if l[len(l)-1] != ':' {
			continue // an attribution ends with a colon: join only then
		}
		joined := make([]string, n)
		for k := range n {
			joined[k] = strings.TrimSpace(lines[i+k])
		}
		if isAttribution(strings.Join(joined, " ")) {
			return n
		}
	}
	return 0
}

// wroteWords are "wrote" in the languages whose mail clients write an
// attribution line, lower-cased, as whole words.
var wroteWords = []string{
	"schrieb", "a écrit", "escribió", "escribio", "ha scritto", "schreef", "napisał", "napisał(a)",
	"napisała", "pisze", "escreveu", "skrev", "kirjoitti", "napsal", "napsal(a)", "написал", "написал(а)",
	"yazdı",
}

// isAttribution reports whether s (one attribution, unwrapped) is an
// "On ... wrote:" line: it ends with a colon, names a date or an address,
// and holds "wrote" as its last word or after a leading "On", or one of
// wroteWords anywhere.
func isAttribution(s string) bool {
	if !strings.HasSuffix(s, ":") || !strings.ContainsAny(s, "0123456789@") {
		return false
	}
	body := " " + strings.ToLower(strings.TrimSpace(strings.TrimSuffix(s, ":"))) + " "
	if strings.HasSuffix(body, " wrote ") {
		return true
	}
	if strings.HasPrefix(body, " on ") && strings.Contains(body, " wrote ") {
		return true
	}
	for _, w := range wroteWords {
		if strings.Contains(body, " "+w+" ") {
			return true
		}
	}
	return false
}

// inlineReplies reports for every i whether lines[i:] answer between
// quotes (a line that is neither blank nor quoted after a quoted one), in
// one pass from the end; the result has len(lines)+1 entries.
func inlineReplies(lines []string) []bool {
	inline := make([]bool, len(lines)+1)
	answered := false // a line below is neither blank nor quoted
	for i := len(lines) - 1; i >= 0; i-- {
		inline[i] = inline[i+1]
		switch l := strings.TrimSpace(lines[i]); {
		case l == "":
		case l[0] == '>':
			inline[i] = inline[i] || answered
		default:
			answered = true
		}
	}
	return inline
}

// trailingQuote is the index of the block of '>' lines (and blank lines)
// that ends lines, len(lines) if the last non-blank line is not quoted.
func trailingQuote(lines []string) int {
	start := len(lines)
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		switch {
		case l == "":
		case l[0] == '>':
			start = i
		default:
			return start
		}
	}
	return start
}

// signatureStart is where the signature of lines starts: its first "-- "
// line (RFC 3676 section 4.3; "--" too when at most maxSignature
// non-blank lines follow, as clients strip the space), else a last
// non-blank line that says which device sent the mail; len(lines) if
// none.
func signatureStart(lines []string) int {
	below := nonBlank(lines) // non-blank lines after the current one
	for i, l := range lines {
		if strings.TrimSpace(l) != "" {
			below--
		}
		switch strings.TrimRight(l, "\r") {
		case "-- ":
			return i
		case "--":
			if below <= maxSignature {
				return i
			}
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		if len(l) <= 80 && sentFrom.MatchString(l) {
			return i
		}
		break
	}
	return len(lines)
}

// maxSignature is the most non-blank lines under a "--" line (without
// its space) for it to count as a signature delimiter.
const maxSignature = 10

func nonBlank(lines []string) int {
	n := 0
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

// sentFrom matches the line mobile and webmail clients add under a mail.
var sentFrom = regexp.MustCompile(`(?i)^(sent from my .+|sent from (mail|outlook|yahoo mail|aol mobile mail)( for .+)?|get outlook for .+|sent with proton ?mail.*|sent from samsung .+|von meinem .+ gesendet|gesendet von meinem .+|gesendet (mit|von) .+ für .+|envoyé (de|depuis) mon .+|enviado (desde|do|de) (mi|meu) .+|inviato da(l mio)? .+|verzonden (vanaf|met) .+|skickat från .+|sendt fra .+|wysłane z .+|lähetetty .+)$`)

// backOverSeparators moves cut up over the blank lines and separator
// lines (underscores or dashes, as Outlook on the web puts above the
// header block) right above it.
func backOverSeparators(lines []string, cut int) int {
	for cut > 0 {
		l := strings.TrimSpace(lines[cut-1])
		if l == "" || (len(l) >= 8 && strings.Trim(l, "_") == "") || (len(l) >= 8 && strings.Trim(l, "-") == "") {
			cut--
			continue
		}
		break
	}
	return cut
}
