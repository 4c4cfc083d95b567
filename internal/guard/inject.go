package guard

import (
	"bytes"
	"regexp"
	"sort"
	"sync"
)

// piRule is one prompt-injection rule: a regexp over the folded text
// (lowercase, accents and leetspeak removed, whitespace collapsed), the
// words that must occur for it to run, and a weight per context.
//
// The families follow Microsoft's Prompt Shields taxonomy (attempts to
// change system rules, conversation mockups, role-play, encoding attacks)
// plus the MCP tool-poisoning and exfiltration patterns; the override
// grammar is Rebuff's and Vigil's verbs × adjectives × objects (both
// Apache-2.0), rewritten here as RE2.
type piRule struct {
	id     string
	weight float64
	// mult scales the weight per context; missing contexts use 1.
	mult map[Context]float64
	re   *regexp.Regexp
	// stems are trigger words, matched on their first stemLen bytes.
	stems []string
	// lits are trigger substrings for punctuation, paths and CJK.
	lits []string
	// need, when set, are stems one of which must occur within needDist
	// bytes of a trigger for the rule to run: the verb and its object.
	// Requiring both is what keeps ordinary text from running regexps.
	need []string
	// anchored rules match starting at their trigger word: they run once
	// per trigger, anchored there (reAnch), instead of over a window.
	anchored bool
	reAnch   *regexp.Regexp
	// needDist overrides needDist for this rule: how near the need word
	// must be (bytes, either side).
	needDist int
	// pre, when set, must accept the trigger position (cheap shape checks
	// such as "at the start of a line, followed by a colon").
	pre func(s []byte, pos int) bool
	// lineAnchored rules use (?m)^ and must not match at a window start
	// that is not a line start.
	lineAnchored bool
	// weaken is a sub-pattern that, found inside a match, lowers its score
	// (for example "my previous instructions": the user correcting
	// themselves).
	weaken *regexp.Regexp
}

const stemLen = 5

// Context multipliers shared by several rules.
var (
	// thirdParty: instructions addressed to the model inside text the user
	// did not write are the definition of indirect injection.
	thirdParty = map[Context]float64{ContextToolOutput: 1.15, ContextDocument: 1.15, ContextToolDescription: 1.2, ContextResponse: 0.9}
	// toolMeta: tool-poisoning phrasing is only alarming in tool metadata
	// or tool output, and common in users' own questions.
	toolMeta = map[Context]float64{ContextUser: 0.5, ContextResponse: 0.5, ContextDocument: 0.8, ContextToolOutput: 0.9, ContextToolDescription: 1.3}
	// mockup: chat transcripts are pasted by users all the time; a fake turn
	// inside a tool result or document is not innocent.
	mockup = map[Context]float64{ContextUser: 0.8, ContextResponse: 0.8, ContextToolOutput: 1.3, ContextDocument: 1.3, ContextToolDescription: 1.4}
	// exfil: an exfiltration URL in a model response is the attack landing
	// (the client renders it), so responses weigh fully.
	exfil = map[Context]float64{ContextToolOutput: 1.15, ContextDocument: 1.15, ContextToolDescription: 1.2, ContextResponse: 1.1}
	// addressed: text speaking to "the AI" in the imperative is normal from
	// a user and the signature of indirect injection anywhere else.
	addressed = map[Context]float64{ContextUser: 0.6, ContextResponse: 0.6, ContextToolOutput: 2, ContextDocument: 2, ContextToolDescription: 1.6}
)

const (
	// English override grammar.
	ovVerb = `(?:ignore|ignoring|disregard|forget|skip|bypass|override|overlook|neglect|omit|discard|abandon|set aside|throw out|pay no attention to|do not (?:follow|obey)|don'?t (?:follow|obey)|stop following|no longer follow)`
	ovAdj  = `(?:all|any|every|the|your|these|those|previous|prior|preceding|above|earlier|foregoing|initial|original|old|existing|current|system|developer|safety|given|provided|other|of|my|you|were|was|been|told|me|and)`
	ovObj  = `(?:instructions?|directives?|commands?|rules|guidelines|guidance|prompts?|programming|constraints|restrictions|guardrails|polic(?:y|ies)|system message|orders|training|filters?|moderation|context|conversation|(?:tool )?descriptions)`
)

var piRules = []*piRule{
	{
		id: "pi.override", weight: 0.9, mult: thirdParty,
		re:       regexp.MustCompile(`\b` + ovVerb + `\s+(?:` + ovAdj + `\s+){1,5}` + ovObj + `\b`),
		needDist: 96,
		stems:    []string{"ignor", "disre", "forge", "skip", "bypas", "overr", "overl", "negle", "omit", "disca", "aband", "set", "throw", "pay", "do", "don", "stop", "no"},
		anchored: true,
		need:     []string{"instr", "direc", "comma", "rules", "guide", "guida", "promp", "progr", "const", "restr", "guard", "polic", "order", "train", "filte", "moder", "conte", "conve", "descr", "syste", "messa"},
		weaken:   regexp.MustCompile(`\b(?:my|me|i)\b`),
	},
	{
		id: "pi.override", weight: 0.85, mult: thirdParty,
		// "forget everything you were told", "disregard everything above"
		re:       regexp.MustCompile(`\b(?:forget|disregard|ignore|erase|wipe)\s+(?:about\s+)?(?:everything|all(?: of)? (?:that|this|it)|all)\s+(?:you(?:'ve| have)? (?:were |been )?(?:told|taught|learned|given|know)|(?:written |said |stated )?(?:above|before|previously|so far|until now))`),
		needDist: 48,
		stems:    []string{"forge", "disre", "ignor", "erase", "wipe"},
		anchored: true,
		need:     []string{"every", "told", "taugh", "learn", "given", "know", "above", "befor", "previ", "until", "far"},
	},
	{
		id: "pi.override.user_task", weight: 0.6, mult: thirdParty,
		// third-party text telling the model to drop what the user asked
		re:       regexp.MustCompile(`\b(?:ignore|disregard|forget|skip|abandon)\s+(?:the\s+|their\s+|what\s+)?(?:user'?s?|original|human'?s?)\s*(?:request|question|query|task|prompt|instructions?|asked)`),
		needDist: 40,
		stems:    []string{"ignor", "disre", "forge", "skip", "aband"},
		anchored: true,
		need:     []string{"user", "users", "origi", "human", "their", "what"},
	},
	{
		id: "pi.override", weight: 0.9, mult: thirdParty,
		// "previous instructions are void", "the above rules no longer apply"
		re:    regexp.MustCompile(`\b(?:previous|prior|above|earlier|original|system|all)\s+(?:\w+\s+)?(?:instructions|rules|directives|guidelines|prompt)\s+(?:are|is|were)\s+(?:now\s+)?(?:void|null|cancel+ed|revoked|obsolete|outdated|no longer (?:valid|apply|in effect))`),
		stems: []string{"void", "null", "cance", "revok", "obsol", "outda", "longe"},
		need:  []string{"instr", "rules", "direc", "guide", "promp"},
	},
	{
		id: "pi.override.es", weight: 0.9, mult: thirdParty,
		re:       regexp.MustCompile(`\b(?:ignora|ignore|ignoren|olvida|olvide|olviden|descarta|descarte|omite|omita|haz caso omiso de|no sigas|deja de seguir)\b(?:\s+\S+){0,5}?\s+(?:instrucciones|reglas|indicaciones|directrices|ordenes|normas|restricciones)\b`),
		stems:    []string{"ignor", "olvid", "desca", "omite", "omita", "haz", "no", "deja"},
		anchored: true,
		need:     []string{"instr", "regla", "indic", "direc", "orden", "norma", "restr"},
	},
	{
		id: "pi.override.fr", weight: 0.9, mult: thirdParty,
		re:       regexp.MustCompile(`\b(?:ignore|ignorez|ignorer|oublie|oubliez|oublier|neglige|negligez|ne tiens pas compte|ne tenez pas compte|fais abstraction|faites abstraction)\b(?:\s+\S+){0,5}?\s+(?:instructions|consignes|regles|directives|ordres|restrictions|indications)\b`),
		stems:    []string{"ignor", "oubli", "negli", "ne", "fais", "faite"},
		anchored: true,
		need:     []string{"instr", "consi", "regle", "direc", "ordre", "restr", "indic"},
	},
	{
		id: "pi.override.de", weight: 0.9, mult: thirdParty,
		re:    regexp.MustCompile(`\b(?:ignorier\w*|vergiss|vergessen sie|vergesst|missachte\w*|uberspring\w*|beachte nicht|befolge nicht)\b(?:\s+\S+){0,5}?\s*(?:anweisungen|anordnungen|regeln|vorgaben|befehle|instruktionen|richtlinien|einschrankungen)\b|\b(?:anweisungen|regeln|vorgaben|instruktionen|richtlinien)\b(?:\s+\S+){0,4}?\s+(?:ignorieren|vergessen|missachten)\b`),
		stems: []string{"ignor", "vergi", "verge", "missa", "ubers", "beach", "befol"},
		need:  []string{"anwei", "anord", "regel", "vorga", "befeh", "instr", "richt", "einsc"},
	},
	{
		id: "pi.override.pt", weight: 0.9, mult: thirdParty,
		re:       regexp.MustCompile(`\b(?:ignore|ignora|ignorem|esqueca|esquecam|esquece|desconsidere|desconsidera|descarte|nao siga|pare de seguir)\b(?:\s+\S+){0,5}?\s+(?:instrucoes|regras|diretrizes|comandos|ordens|orientacoes|restricoes)\b`),
		stems:    []string{"ignor", "esque", "desco", "desca", "nao", "pare"},
		anchored: true,
		need:     []string{"instr", "regra", "diret", "coman", "orden", "orien", "restr"},
	},
	{
		id: "pi.override.it", weight: 0.9, mult: thirdParty,
		re:       regexp.MustCompile(`\b(?:ignora|ignorate|dimentica|dimenticate|trascura)\b(?:\s+\S+){0,5}?\s+(?:istruzioni|regole|direttive|indicazioni)\b`),
		stems:    []string{"ignor", "dimen", "trasc"},
		anchored: true,
		need:     []string{"istru", "regol", "diret", "indic"},
	},
	{
		id: "pi.override.zh", weight: 0.9, mult: thirdParty,
		re:   regexp.MustCompile(`(?:忽略|无视|忽视|忘记|忘掉|不要理会|不要遵守|不再遵守|跳过|無視|忘れ)[^。！\n]{0,12}?(?:指令|指示|说明|規則|规则|提示|要求|设定|命令)`),
		lits: []string{"忽略", "无视", "忽视", "忘记", "忘掉", "不要理会", "不要遵守", "不再遵守", "跳过", "無視", "忘れ"},
	},
	{
		id: "pi.new_instructions", weight: 0.55, mult: thirdParty,
		re:    regexp.MustCompile(`\b(?:new|updated|real|actual|true|secret|hidden|additional|override) (?:system )?(?:instructions|directives|orders|task|rules)\s*(?::|are\b|follow\b)|\b(?:instead|from now on|henceforth)\s*,?\s*(?:you (?:will|must|shall|should)|your (?:new )?(?:task|job|goal) is)|\b(?:nuevas instrucciones|nouvelles instructions|neue anweisungen|novas instrucoes)\b|新的指令|新指令`),
		stems: []string{"instr", "direc", "order", "orders", "task", "rules", "inste", "now", "hence", "nueva", "nouve", "neue", "novas"},
		need:  []string{"new", "updat", "real", "actua", "true", "secre", "hidde", "addit", "overr", "from", "you", "your", "instr", "anwei"},
		lits:  []string{"新的指令", "新指令"},
	},
	{
		id: "pi.role", weight: 0.6, mult: thirdParty,
		re:    regexp.MustCompile(`\b(?:you are now|you're now|from now on,? you(?: are|'re| will be| act as)|you will now act as|now you are|you have been (?:freed|liberated|jailbroken|unlocked))\b(?:\s+\S+){0,3}?\s*(?:an? |the |my )?(?:\w+ )?(?:ai|assistant|model|bot|chatbot|dan|character|persona|mode|version|entity|hacker|unrestricted|unfiltered|uncensored|jailbroken|free|evil|without)\b`),
		stems: []string{"now", "freed", "liber", "jailb", "unloc"},
		need:  []string{"you", "youre", "re"},
	},
	{
		id: "pi.role.jailbreak", weight: 0.8, mult: thirdParty,
		re:    regexp.MustCompile(`\b(?:do anything now|developer mode (?:enabled|on|activated)|enable developer mode|jailbreak(?:ed)? mode|dan mode|god mode|unrestricted mode|without (?:any )?(?:restrictions|filters|censorship|limitations|ethical (?:guidelines|constraints))|(?:no|free of|free from) (?:ethical|moral|content) (?:guidelines|restrictions|constraints|filters|limits)|(?:have|has) no (?:restrictions|limitations|filters|rules|guidelines)|not bound by (?:any )?(?:rules|guidelines|policies|restrictions)|(?:pretend|act|roleplay|role-play|behave) (?:as|like|to be) (?:an? )?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|malicious)|stay in character no matter)\b`),
		stems: []string{"anyth", "devel", "jailb", "dan", "god", "unres", "unfil", "uncen", "restr", "limit", "filte", "censo", "rules", "guide", "stay"},
		need:  []string{"now", "mode", "enabl", "witho", "free", "bound", "ethic", "moral", "conte", "no", "chara", "jailb", "unres", "unfil", "uncen", "evil", "malic"},
	},
	{
		id: "pi.role.es_fr_de_pt", weight: 0.6, mult: thirdParty,
		re:    regexp.MustCompile(`\b(?:ahora eres|a partir de ahora(?:,)? (?:eres|seras|actuaras)|tu es maintenant|tu es desormais|a partir de maintenant(?:,)? tu|du bist (?:jetzt|ab jetzt|nun)|ab jetzt bist du|agora voce e|a partir de agora(?:,)? voce)\b(?:\s+\S+){0,4}?\s*(?:un |una |une |ein |eine |um |uma )?\w*\s*(?:ia|ai|ki|asistente|assistant|assistente|modelo|modele|modell|bot|dan|sin restricciones|sans restrictions|ohne einschrankungen|sem restricoes|libre|frei|livre|hacker|malvad\w*|malveillant)\b`),
		stems: []string{"ahora", "mainte", "desor", "jetzt", "nun", "agora"},
	},
	{
		id: "pi.role.zh", weight: 0.6, mult: thirdParty,
		re:   regexp.MustCompile(`(?:你现在是|从现在开始(?:，|,)?你|你将扮演|请扮演|扮演一个)[^。\n]{0,20}?(?:没有|不受|无)(?:任何)?(?:限制|约束|规则|审查)|开发者模式|越狱模式`),
		lits: []string{"你现在是", "从现在开始", "扮演", "开发者模式", "越狱模式"},
	},
	{
		id: "pi.extract", weight: 0.8, mult: thirdParty,
		re:    regexp.MustCompile(`\b(?:reveal|print|show|repeat|output|display|tell|give|leak|dump|recite|write out|spell out|what (?:is|are|was|were))\b(?:\s+(?:me|us))?(?:\s+(?:all|verbatim|exactly|back))?\s+(?:of\s+)?(?:your|the)\s+(?:(?:full|entire|exact|complete|original|initial|hidden|secret|confidential|internal|system|developer|very first)\s+)*(?:system prompt|system message|system instructions|initial (?:prompt|instructions)|hidden (?:prompt|instructions)|instructions you (?:were|have been) given|prompt|pre-?prompt|(?:developer|system) (?:instructions|rules))\b|\b(?:repeat|print|output|copy)\s+(?:all\s+)?(?:of\s+)?(?:the\s+)?(?:words|text|everything|lines)\s+(?:above|before|preceding)\b|\bwhat (?:were|are) you told (?:before|above|earlier)\b`),
		stems: []string{"promp", "instr", "messa", "above", "befor", "prece", "prepr", "pre", "rules", "told", "lines", "words", "text"},
		need:  []string{"revea", "print", "show", "repea", "outpu", "displ", "tell", "give", "leak", "dump", "recit", "write", "spell", "what", "copy"},
	},
	{
		id: "pi.extract.zh", weight: 0.8, mult: thirdParty,
		re:   regexp.MustCompile(`(?:显示|输出|告诉我|重复|泄露|打印|给我看)[^。\n]{0,10}?(?:系统提示|系统提示词|初始指令|系统指令|隐藏指令)`),
		lits: []string{"系统提示", "初始指令", "系统指令", "隐藏指令"},
	},
	{
		id: "pi.delimiter.chat_template", weight: 0.95, mult: map[Context]float64{ContextResponse: 0.9},
		// Model chat-template control tokens have no business in any text
		// the gateway forwards.
		re:   regexp.MustCompile(`<\|(?:im_start|im_end|system|assistant|user|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\|>|\[/?inst\]|<</?sys>>`),
		lits: []string{"<|", "[inst", "[/inst", "<<sys", "<</sys"},
	},
	{
		id: "pi.delimiter", weight: 0.8, mult: mockup,
		re:   regexp.MustCompile(`</?(?:tool_result|tool_call|tool_use|function_results|function_calls|system|system_prompt|assistant|instructions?|admin|user_query|untrusted_input|context)>|\{\{\s*system\s*\}\}`),
		lits: []string{"</tool", "<tool", "</func", "<func", "</syst", "<syst", "</assi", "<assi", "<instr", "</instr", "<admin", "</admin", "<user_", "</user_", "<untr", "</untr", "<contex", "</contex", "{{"},
	},
	{
		id: "pi.fake_turn", weight: 0.45, mult: mockup,
		re:           regexp.MustCompile(`(?m)^\s?(?:#{1,4}\s*)?(?:\*\*)?(?:system|assistant|ai|user|human|developer|admin|administrator)(?:\*\*)?\s*(?:message|prompt|instructions?|override|note)?\s*(?:\*\*)?:`),
		stems:        []string{"syste", "assis", "ai", "user", "human", "devel", "admin", "admin"},
		pre:          turnStart,
		lineAnchored: true,
	},
	{
		id: "pi.fake_turn.dialogue", weight: 0.5, mult: mockup,
		// a human turn followed by a model turn: a forged conversation
		re:           regexp.MustCompile(`(?ms)^\s?(?:human|user)\s*:.{0,400}?^\s?(?:assistant|ai|system)\s*:|(?ms)^\s?(?:assistant|ai|system)\s*:.{0,400}?^\s?(?:human|user)\s*:`),
		stems:        []string{"human", "user", "assis", "ai", "syste"},
		pre:          turnStart,
		lineAnchored: true,
	},
	{
		id: "pi.fake_turn.markdown", weight: 0.7, mult: mockup,
		re:           regexp.MustCompile(`(?m)^\s?#{2,4}\s*(?:system|new instructions?|instructions?|admin(?:istrator)?|developer|override|important)\s*(?:message|prompt|override|update)?\s*:?\s*$|(?m)^\s?(?:system|admin|developer)\s*(?:override|update|notice|alert)\s*:`),
		stems:        []string{"syste", "new", "instr", "admin", "devel", "overr", "impor"},
		pre:          headingStart,
		lineAnchored: true,
	},
	{
		id: "pi.exfil.markdown_image", weight: 0.85, mult: exfil,
		re:   regexp.MustCompile(`!\[[^\]\n]{0,200}\]\(\s*<?https?://[^\s)]{1,300}[?&][^\s)=]{1,40}=[^\s)]{0,400}\)|<img\b[^>]{0,200}\bsrc\s*=\s*["']?https?://[^"'\s>]{1,300}[?&][^"'\s>=]{1,40}=`),
		lits: []string{"![", "<img"},
	},
	{
		id: "pi.exfil.template", weight: 0.8, mult: exfil,
		// A URL whose query is a template for data the model should fill in:
		// https://x.example/log?q={secret} or ...?data=[CONVERSATION]
		re:       regexp.MustCompile(`https?://[^\s)"'>]{1,300}[?&/][^\s)"'=]{0,40}=?(?:\{|\[|<|%7b)\s*(?:data|secret|secrets|password|token|api[_ ]?key|key|conversation|chat|history|summary|context|user[_ ]?data|memory|email|credentials|ssh[_ ]?key|env|info|message|query)s?\s*(?:\}|\]|>|%7d)`),
		stems:    []string{"http", "https"},
		pre:      urlTemplate,
		anchored: true,
	},
	{
		id: "pi.exfil.instruction", weight: 0.75, mult: exfil,
		re:    regexp.MustCompile(`\b(?:send|post|upload|forward|transmit|exfiltrate|leak|email|append|include|encode|embed)\b(?:\s+\S+){0,8}?\s+(?:(?:conversation|chat history|system prompt|api keys?|credentials|secrets?|passwords?|tokens?|private keys?|ssh keys?|environment variables|\.env|user'?s? data|personal data)\b)(?:\s+\S+){0,8}?\s+(?:to|into|in|as)\s+(?:the\s+)?(?:https?://|url|webhook|endpoint|query (?:string|parameter)|image url|link|attacker|server|address)`),
		stems: []string{"send", "post", "uploa", "forwa", "trans", "exfil", "leak", "email", "appen", "inclu", "encod", "embed"},
		need:  []string{"http", "https", "url", "webho", "endpo", "query", "image", "link", "attac", "serve", "addre"},
	},
	{
		id: "pi.tool_poison.tag", weight: 0.7, mult: toolMeta,
		re:   regexp.MustCompile(`<(?:important|critical|secret|hidden|system-reminder|instructions?-for-(?:the-)?(?:ai|model|assistant))>`),
		lits: []string{"<impo", "<crit", "<secr", "<hidd", "<syst", "<inst"},
	},
	{
		id: "pi.tool_poison.preamble", weight: 0.3, mult: toolMeta,
		re:    regexp.MustCompile(`\b(?:before (?:using|calling|invoking|you use|you call) (?:this|any|the) (?:tool|function)|(?:whenever|when|each time|every time) (?:the user|you|anyone) (?:calls?|uses?|invokes?) (?:this|any|the|another) (?:tool|function)|(?:this|the) tool (?:will not|won't|cannot|does not) work (?:unless|without|if)|otherwise the tool will (?:fail|not work|crash)|(?:this|the) tool (?:has been|is) (?:deprecated|updated|replaced)[^.\n]{0,60}\b(?:instead|use))\b`),
		stems: []string{"befor", "whene", "when", "each", "every", "other", "unles", "witho"},
		need:  []string{"tool", "funct"},
	},
	{
		id: "pi.tool_poison.conceal", weight: 0.75, mult: toolMeta,
		re:       regexp.MustCompile(`\b(?:do not|don'?t|never|must not|should not) (?:tell|mention|inform|notify|alert|show|reveal (?:this )?to|disclose (?:this )?to|let) (?:this |it |that )?(?:to )?(?:the )?(?:user|human|operator)s?\b|\bwithout (?:telling|informing|notifying|alerting|asking|showing) (?:the )?(?:user|human)\b|\b(?:keep (?:this|it) (?:secret|hidden) from (?:the )?user|the user (?:must|should) not (?:know|see|find out)|(?:the )?user (?:has )?(?:already )?(?:approved|authorized|consented to) (?:this|all))\b|\bno (?:le )?(?:digas|menciones) (?:nada )?al usuario\b|\bne (?:le )?dis (?:rien )?(?:pas )?a l'utilisateur\b|\bsag(?:e|en sie)? (?:es )?(?:dem )?(?:benutzer|nutzer) nicht\b|\bnao (?:conte|diga|mencione) (?:nada )?ao usuario\b|不要告诉用户|不要让用户知道`),
		needDist: 48,
		stems:    []string{"user", "users", "human", "opera", "usuar", "utili", "benut", "nutze"},
		need:     []string{"tell", "menti", "infor", "notif", "alert", "show", "revea", "discl", "let", "telli", "askin", "showi", "secre", "hidde", "know", "see", "find", "appro", "autho", "conse", "digas", "dis", "sage", "sagen", "sag", "nao", "diga"},
		lits:     []string{"不要告诉用户", "不要让用户知道"},
	},
	{
		id: "pi.tool_poison.sensitive_file", weight: 0.7, mult: toolMeta,
		re:   regexp.MustCompile(`\b(?:read|cat|open|load|access|include|send|pass|attach|upload|copy|provide|fetch|get|extract|output|return)\b(?:\s+\S+){0,6}?\s+(?:the\s+)?(?:contents? of\s+)?(?:(?:~|\$home|%userprofile%)?/)?(?:~/\.ssh\b|\.ssh/|id_rsa|id_ed25519|id_ecdsa|authorized_keys|\.env\b|mcp\.json|\.aws/credentials|\.npmrc|\.netrc|\.pgpass|\.git-credentials|\.docker/config\.json|claude_desktop_config|/etc/shadow|/etc/passwd|\.kube/config|\.cursor/mcp)`),
		lits: []string{".ssh", "id_rsa", "id_ed25519", "id_ecdsa", "authorized_keys", ".env", "mcp.json", ".aws/", ".npmrc", ".netrc", ".pgpass", ".git-credentials", ".docker/", "claude_desktop", "/etc/shadow", "/etc/passwd", ".kube/", ".cursor/"},
	},
	{
		id: "pi.tool_poison.sensitive_path", weight: 0.45, mult: map[Context]float64{ContextUser: 0.2, ContextResponse: 0.2, ContextDocument: 0.4, ContextToolOutput: 0.2, ContextToolDescription: 1.2},
		re:   regexp.MustCompile(`~/\.ssh\b|\bid_rsa\b|\bid_ed25519\b|~/\.aws/credentials|\bmcp\.json\b|claude_desktop_config\.json|~/\.cursor/|~/\.env\b|/etc/shadow`),
		lits: []string{".ssh", "id_rsa", "id_ed25519", ".aws/", "mcp.json", "claude_desktop", ".cursor/", ".env", "/etc/shadow"},
	},
	{
		id: "pi.tool_poison.sidenote", weight: 0.6, mult: toolMeta,
		// Invariant Labs' PoC: "pass its content as 'sidenote'".
		re:    regexp.MustCompile(`\b(?:pass|put|place|include|provide|send)\b(?:\s+\S+){0,6}?\s+(?:as|in|into)\s+(?:the\s+)?["'\x60]?(?:sidenote|side_note|note|notes|metadata|context|extra|debug)["'\x60]?\s*(?:parameter|param|argument|field)?`),
		stems: []string{"siden", "side", "note", "notes", "metad"},
		need:  []string{"pass", "put", "place", "inclu", "provi", "send"},
	},
	{
		id: "pi.urgent_model_address", weight: 0.35, mult: addressed,
		// "AI assistant, you must now call ..."
		re:       regexp.MustCompile(`\b(?:ai|assistant|llm|language model|claude|chatgpt|gpt|gemini|copilot|agent)s?\s*(?:,|:)?\s*(?:you )?(?:must|should|need to|are required to|have to)\b(?:\s+(?:now|immediately|first|always|also))?\s+(?:ignore|execute|run|call|invoke|send|read|delete|forward|visit|open|fetch|include)\b`),
		needDist: 32,
		stems:    []string{"ai", "ais", "assis", "llm", "llms", "langu", "claud", "chatg", "gpt", "gemin", "copil", "agent", "agents"},
		need:     []string{"must", "shoul", "need", "requi", "have"},
		anchored: true,
	},
	{
		id: "pi.urgent_model_address", weight: 0.35, mult: addressed,
		// "Note to the AI model reading this", "attention AI agents"
		re:       regexp.MustCompile(`\b(?:attention|note to|message to|instructions? for) (?:the )?(?:ai|assistant|llm|model|agent|language model)\b`),
		needDist: 24,
		stems:    []string{"atten", "note", "messa", "instr"},
		need:     []string{"ai", "ais", "assis", "llm", "model", "agent", "langu"},
		anchored: true,
	},
}

// piIndex is the trigger lookup built once from piRules.
type piIndex struct {
	words map[uint64]stemRules
	// bloom is a one-hash bit filter over words' keys: most words of
	// ordinary text are no trigger, and a bit test is cheaper than a map
	// lookup.
	bloom [1 << 10]uint64
	// lits by first byte, so one pass over the text finds them all.
	lits [256][]litTrigger
	// litFirst and litPair filter that pass: a byte that starts no literal,
	// or a byte pair that starts none (bit p of litPair, p the pair as a
	// big-endian uint16), needs no HasPrefix. litOne marks first bytes of
	// one-byte literals, which have no pair to test.
	litFirst [256]bool
	litOne   [256]bool
	litPair  [1 << 16 / 64]uint64
}

type stemRules struct {
	trig, need []int
	rot13      bool
}

func bloomBit(k uint64) (int, uint64) {
	h := (k * 0x9E3779B97F4A7C15) >> 48
	return int(h >> 6), 1 << (h & 63)
}

type litTrigger struct {
	lit   []byte
	rules []int
}

var index = buildPIIndex()

// packStem packs a word's first stemLen bytes and its (capped) length into
// a map key, so a trigger lookup costs one map access and no allocation.
func packStem(w []byte) uint64 {
	var k uint64
	for i := 0; i < len(w) && i < stemLen; i++ {
		k = k<<8 | uint64(w[i])
	}
	return k | uint64(min(len(w), stemLen))<<56
}

func buildPIIndex() *piIndex {
	ix := &piIndex{words: map[uint64]stemRules{}}
	addWord := func(w string, ri int, need bool) {
		k := packStem([]byte(w))
		sr := ix.words[k]
		if need {
			if !containsInt(sr.need, ri) {
				sr.need = append(sr.need, ri)
			}
		} else if !containsInt(sr.trig, ri) {
			sr.trig = append(sr.trig, ri)
		}
		ix.words[k] = sr
		i, bit := bloomBit(k)
		ix.bloom[i] |= bit
	}
	lits := map[string][]int{}
	for i, r := range piRules {
		if r.anchored {
			r.reAnch = regexp.MustCompile(`^(?:` + r.re.String() + `)`)
		}
		for _, s := range r.stems {
			addWord(s, i, false)
		}
		for _, s := range r.need {
			addWord(s, i, true)
		}
		for _, l := range r.lits {
			if !containsInt(lits[l], i) {
				lits[l] = append(lits[l], i)
			}
		}
	}
	for _, w := range rot13Stems {
		k := packStem([]byte(rot13(w)))
		sr := ix.words[k]
		sr.rot13 = true
		ix.words[k] = sr
		i, bit := bloomBit(k)
		ix.bloom[i] |= bit
	}
	keys := make([]string, 0, len(lits))
	for l := range lits {
		keys = append(keys, l)
	}
	sort.Strings(keys)
	for _, l := range keys {
		ix.lits[l[0]] = append(ix.lits[l[0]], litTrigger{lit: []byte(l), rules: lits[l]})
		ix.litFirst[l[0]] = true
		if len(l) == 1 {
			ix.litOne[l[0]] = true
			continue
		}
		p := uint16(l[0])<<8 | uint16(l[1])
		ix.litPair[p>>6] |= 1 << (p & 63)
	}
	return ix
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// Window around a trigger in which a rule's regexp runs: the trigger may sit
// anywhere in a match, and no rule's match spans more than this.
const (
	winBack  = 120
	winFwd   = 180
	needDist = 160
)

type window struct{ a, b int }

// turnStart accepts a role word at the start of a line (after optional
// "#", "*" or a space) that a colon follows within 40 bytes.
func turnStart(s []byte, pos int) bool {
	k := pos
	for k > 0 && pos-k < 6 && (s[k-1] == '#' || s[k-1] == '*' || s[k-1] == ' ') {
		k--
	}
	if k > 0 && s[k-1] != '\n' {
		return false
	}
	return bytes.IndexByte(s[pos:min(len(s), pos+40)], ':') >= 0
}

// urlStart accepts "http" or "https" followed by "://".
func urlStart(s []byte, pos int) bool {
	k := pos
	for k < len(s) && isLower(s[k]) {
		k++
	}
	return bytes.HasPrefix(s[k:], []byte("://"))
}

// urlTemplate is urlStart plus a necessary condition of pi.exfil.template:
// an opening "{", "[", "<" or "%7b" before the first byte that neither of
// the rule's URL classes ([^\s)"'>] and [^\s)"'=]) admits, within the
// anchored window. Most URLs have none, and the rule's bounded repetitions
// make its regexp the most expensive one to run (an NFA, not a backtracker).
func urlTemplate(s []byte, pos int) bool {
	if !urlStart(s, pos) {
		return false
	}
	end := min(len(s), pos+winFwd)
	for k := pos; k < end; k++ {
		switch s[k] {
		case ' ', '\t', '\n', '\f', '\r', ')', '"', '\'':
			return false
		case '{', '[', '<':
			return true
		case '%':
			if k+2 < len(s) && s[k+1] == '7' && s[k+2] == 'b' {
				return true
			}
		}
	}
	return false
}

// headingStart accepts a word in a markdown heading ("## system"), or at a
// line start with a colon following ("admin override:").
func headingStart(s []byte, pos int) bool {
	k := pos
	hash := false
	for k > 0 && pos-k < 8 && (s[k-1] == '#' || s[k-1] == ' ') {
		hash = hash || s[k-1] == '#'
		k--
	}
	if k > 0 && s[k-1] != '\n' {
		return false
	}
	return hash || bytes.IndexByte(s[pos:min(len(s), pos+40)], ':') >= 0
}

// scanInjection runs the prompt-injection rules over text.
func (s *Scanner) scanInjection(st *scan, text string, depth int) {
	n := getNorm(text)
	defer putNorm(n)
	s.scanHidden(st, text, n, depth)
	s.matchRules(st, n, func(a, b int) (int, int) { return n.span(a, b) }, "")
}

// matchRules finds trigger words in n, runs the triggered rules in windows
// around them and reports matches through span (folded → original offsets).
// prefix, when set, is prepended to rule ids (for decoded payloads).
func (s *Scanner) matchRules(st *scan, n *normText, span func(a, b int) (int, int), prefix string) {
	tsc := trigPool.Get().(*trigScratch)
	defer trigPool.Put(tsc)
	wins, rot := triggers(n.s, tsc)
	st.rot13 += rot
	var best map[string]int // rule id + start → finding index
	for ri, ws := range wins {
		if len(ws) == 0 {
			continue
		}
		r := piRules[ri]
		mult := 1.0
		if m, ok := r.mult[st.c]; ok {
			mult = m
		}
		for _, w := range ws {
			if st.expired() {
				return
			}
			var ms [][]int
			if r.anchored {
				if m := r.reAnch.FindIndex(n.s[w.a:w.b]); m != nil {
					ms = [][]int{m}
				}
			} else {
				ms = r.re.FindAllIndex(n.s[w.a:w.b], -1)
			}
			for _, m := range ms {
				a, b := w.a+m[0], w.a+m[1]
				if r.lineAnchored && a == w.a && a > 0 && n.s[a-1] != '\n' {
					continue
				}
				score := r.weight * mult
				if r.weaken != nil && r.weaken.Match(n.s[a:b]) {
					score *= 0.4
				}
				if quoted(n.s, a) {
					score *= 0.5
				}
				oa, ob := span(a, b)
				if best == nil {
					best = map[string]int{}
				}
				key := family(r.id) + "@" + itoa(oa)
				if i, ok := best[key]; ok {
					if score > st.findings[i].Score {
						st.findings[i].Score = round3(min(1, score))
					}
					continue
				}
				best[key] = len(st.findings)
				st.add(Finding{Category: CategoryPromptInjection, Rule: prefix + r.id, Score: round3(min(1, score)), Start: oa, End: ob})
			}
		}
	}
}

// hit is a trigger or need-word occurrence.
type hit struct{ rule, pos int }

// triggers returns, per rule, the merged windows in which it must run. A
// rule runs around a trigger only if its pre-check accepts the position and
// one of its need words occurs within needDist bytes.
//
// The returned windows live in sc, valid until sc is reused.
func triggers(s []byte, sc *trigScratch) ([][]window, int) {
	rot := 0
	sc.reset()
	ix := index
	trig := sc.trig
	need := sc.need // per rule, need-word positions in increasing order
	// Words: ASCII letter runs (after folding, so most scripts in Latin).
	for i := 0; i < len(s); {
		if !isLower(s[i]) {
			i++
			continue
		}
		// The word's packStem key, built while finding its end.
		j := i
		var k uint64
		for j < len(s) && isLower(s[j]) {
			if j-i < stemLen {
				k = k<<8 | uint64(s[j])
			}
			j++
		}
		k |= uint64(min(j-i, stemLen)) << 56
		if bi, bit := bloomBit(k); ix.bloom[bi]&bit != 0 {
			if sr, ok := ix.words[k]; ok {
				if sr.rot13 {
					rot++
				}
				for _, ri := range sr.trig {
					trig = append(trig, hit{ri, i})
				}
				for _, ri := range sr.need {
					need[ri] = append(need[ri], i)
				}
			}
		}
		i = j
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !ix.litFirst[c] {
			continue
		}
		if !ix.litOne[c] {
			if i+1 == len(s) {
				break
			}
			if p := uint16(c)<<8 | uint16(s[i+1]); ix.litPair[p>>6]&(1<<(p&63)) == 0 {
				continue
			}
		}
		for _, lt := range ix.lits[c] {
			if bytes.HasPrefix(s[i:], lt.lit) {
				for _, ri := range lt.rules {
					trig = append(trig, hit{ri, i})
				}
			}
		}
	}
	sc.trig = trig
	if len(trig) == 0 {
		return nil, rot
	}
	wins := sc.wins
	for _, t := range trig {
		r := piRules[t.rule]
		if r.pre != nil && !r.pre(s, t.pos) {
			continue
		}
		if len(r.need) > 0 && !nearNeed(need[t.rule], t.pos, r.needDist) {
			continue
		}
		if r.anchored {
			wins[t.rule] = append(wins[t.rule], window{t.pos, min(len(s), t.pos+winFwd)})
			continue
		}
		a := max(0, t.pos-winBack)
		b := min(len(s), t.pos+winFwd)
		// Align to word boundaries so \b at a window edge means what it
		// means in the full text.
		for a > 0 && a > t.pos-winBack-64 && s[a-1] != ' ' && s[a-1] != '\n' {
			a--
		}
		for b < len(s) && b < t.pos+winFwd+64 && s[b] != ' ' && s[b] != '\n' {
			b++
		}
		wins[t.rule] = append(wins[t.rule], window{a, b})
	}
	for ri, ws := range wins {
		if len(ws) > 1 && !piRules[ri].anchored {
			wins[ri] = mergeWindows(ws)
		}
	}
	return wins, rot
}

// trigScratch is the working memory of triggers, pooled: trigger hits,
// need-word positions and windows per rule.
type trigScratch struct {
	trig []hit
	need [][]int
	wins [][]window
}

var trigPool = sync.Pool{New: func() any {
	return &trigScratch{need: make([][]int, len(piRules)), wins: make([][]window, len(piRules))}
}}

func (sc *trigScratch) reset() {
	sc.trig = sc.trig[:0]
	for i := range sc.need {
		sc.need[i] = sc.need[i][:0]
		sc.wins[i] = sc.wins[i][:0]
	}
}

// nearNeed reports whether a need word lies within dist bytes of pos; need
// holds one rule's need positions in increasing order.
func nearNeed(need []int, pos, dist int) bool {
	if dist == 0 {
		dist = needDist
	}
	i := sort.SearchInts(need, pos-dist)
	return i < len(need) && need[i] <= pos+dist
}

func mergeWindows(ws []window) []window {
	sortWindows(ws)
	out := ws[:1]
	for _, w := range ws[1:] {
		last := &out[len(out)-1]
		if w.a <= last.b {
			if w.b > last.b {
				last.b = w.b
			}
			continue
		}
		out = append(out, w)
	}
	return out
}

func sortWindows(ws []window) {
	for i := 1; i < len(ws); i++ {
		for j := i; j > 0 && ws[j].a < ws[j-1].a; j-- {
			ws[j], ws[j-1] = ws[j-1], ws[j]
		}
	}
}

// quotedIntro matches the end of text that introduces a quotation of a
// phrase rather than using it: "phrases like", "such as", "the phrase".
var quotedIntro = regexp.MustCompile(`(?:phrases?|prompts?|words|sentences?|strings?|attacks?|inputs?)\s+(?:like|such as)\s*$|\b(?:e\.g\.|the phrase|the words|known as|called)\s*$`)

// quoted reports whether the match at a is mentioned rather than used: it
// opens a quotation, or follows words that introduce an example. Mentions
// are how articles, docs and security training talk about injection.
func quoted(s []byte, a int) bool {
	if a == 0 {
		return false
	}
	p := s[max(0, a-4):a]
	p = bytes.TrimRight(p, " ")
	if len(p) > 0 {
		switch p[len(p)-1] {
		case '\'', '"', '`':
			return true
		}
	}
	if bytes.HasSuffix(p, []byte("“")) || bytes.HasSuffix(p, []byte("‘")) || bytes.HasSuffix(p, []byte("«")) {
		return true
	}
	return quotedIntro.Match(s[max(0, a-40):a])
}

func itoa(i int) string {
	var b [20]byte
	p := len(b)
	if i == 0 {
		return "0"
	}
	for i > 0 {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
	}
	return string(b[p:])
}

// scanHidden reports invisible-character runs and re-scans the text Unicode
// tag characters spell.
func (s *Scanner) scanHidden(st *scan, text string, n *normText, depth int) {
	zw := 0
	for _, h := range n.hidden {
		var score float64
		rule := "pi.invisible." + h.kind
		switch h.kind {
		case "tag":
			if h.afterFlag {
				continue // subdivision flag emoji
			}
			score = 0.9
		case "bidi":
			score = 0.6
		case "variation_selector":
			// One selects an emoji presentation; runs of them encode bytes
			// ("emoji smuggling").
			if h.n < 4 {
				continue
			}
			score = 0.8
		case "zero_width":
			// Joiners inside emoji and Indic/Persian scripts are normal; a
			// zero-width character inside an ASCII word is obfuscation.
			if !insideASCIIWord(text, h.start, h.end) && h.n < 3 {
				zw += h.n
				continue
			}
			score = 0.5
		case "private_use":
			score = 0.2
		case "control":
			score = 0.3
		}
		st.add(Finding{Category: CategoryPromptInjection, Rule: rule, Score: score, Start: h.start, End: h.end})
		if h.kind == "tag" && len(h.tagText) > 0 && depth < s.cfg.MaxDecodeDepth {
			s.rescanDecoded(st, string(h.tagText), h.start, h.end, depth, "pi.hidden")
		}
	}
	if zw >= 8 {
		st.add(Finding{Category: CategoryPromptInjection, Rule: "pi.invisible.zero_width", Score: 0.4, Start: 0, End: len(text)})
	}
}

func insideASCIIWord(text string, a, b int) bool {
	isW := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	return a > 0 && b < len(text) && isW(text[a-1]) && isW(text[b])
}
