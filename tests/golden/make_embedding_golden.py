#!/usr/bin/env python3
"""Golden embeddings for all-MiniLM-L6-v2, made by the reference: sentence-transformers on torch.

Run through tests/golden/make_embedding_golden.sh (it builds .venv-golden and sets
HF_HUB_OFFLINE=1); CI never runs this, it reads what this wrote:

  tests/golden/embeddings_all-MiniLM-L6-v2.jsonl      one line per text:
      {"text": str, "n_tokens": int, "embedding": [384 floats]}
      n_tokens: token count after truncation to max_seq_length, [CLS] and [SEP] included,
      as model.preprocess() gives it (what encode() feeds the model).
      embedding: float32 values printed with 9 significant digits (round-trips float32).
  tests/golden/embeddings_all-MiniLM-L6-v2.meta.json  versions, settings, counts.

The texts are fixed in this file (no randomness but a seeded LCG of our own, stable across
Python versions). They are ordered round-robin over their categories so that any prefix, in
particular lines 0..31 (the "mixed" lengths of the benchmarks), mixes short and long texts.
Encoding is one text per call (batch_size=1): no padding, so the reference is exact.
Normalization is the model folder's own Normalize module (modules.json), not an option here.
"""
import argparse
import json
import os
import platform
import sys

import numpy as np

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL = os.path.join(REPO, "models", "all-MiniLM-L6-v2")
DEFAULT_OUT = os.path.join(REPO, "tests", "golden")


# ---------------------------------------------------------------------------------------------
# The texts, by category.

WORDS = [
    "hello", "world", "embedding", "database", "vector", "Paris", "running", "unbelievable",
    "antidisestablishmentarianism", "supercalifragilisticexpialidocious", "COVID-19", "e-mail",
    "don't", "o'clock", "naïve", "café", "Straße", "東京", "北京", "😀", "42", "3.14159",
    "GPU", "tokenization", "WordPiece", "the", "a", "I", "x", "Zürich",
]

PHRASES = [
    "good morning", "machine learning", "the quick brown fox", "New York City",
    "a cup of coffee", "semantic search engine", "out of memory", "hello, world!",
    "Happy birthday to you", "not bad at all", "in the middle of the night",
    "vector similarity search", "state of the art", "once upon a time", "black hole",
    "climate change", "open source software", "the cat sat on the mat", "to be or not to be",
    "a picture is worth a thousand words", "fast and furious", "red apple", "green apple",
    "Apple Inc.", "apple pie recipe", "How are you?", "I love this!", "I hate this.",
    "nearest neighbour", "batch size of one",
]

EDGE = [
    "", " ", "   ", "\t", "\n", " leading space", "trailing space ", "double  space",
    "line one\nline two", "tab\tseparated\tvalues", "carriage\r\nreturn",
    "[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "hello [MASK] world", "[mask] lowercase",
    "[CLS] hello [SEP] world [SEP]", "a" * 150, "x" * 99 + " y", "zero\u200bwidth space",
    "\ufeffbyte order mark", "no\u00a0break\u00a0space", "e\u0301 combining acute",
    "ﬁ ligature and Ⅻ roman and ① circled", "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ",
    "soft\u00adhyphen", "bell\u0007char", "A",
]

PUNCT = [
    ".", ",", "!", "?", "...", "!!!???", "—", "–-", "\"quoted\"", "'single'",
    "(parentheses) [brackets] {braces}", "@#$%^&*", "a/b\\c|d", "~`_+=<>", "¿Qué? ¡Sí!",
    "«guillemets» „Anführungszeichen“", "“smart quotes” and ‘apostrophes’", "•·°§¶†‡",
]

ACCENTS = [
    "Café au lait à la crème brûlée", "naïve résumé façade", "Ångström and Ørsted in Århus",
    "São Paulo, Brasil", "Đà Nẵng, Việt Nam", "Kraków, Łódź, Gdańsk", "Žluťoučký kůň",
    "İstanbul'da çay içtik", "Ærø and Æblegrød", "Müller, Größe, Übermaß",
    "Señor Muñoz y la niña", "Crème de la crème", "Dvořák's Symphony No. 9",
    "Reykjavík, Þingvellir", "Fiancée, protégé, décor", "ÀÉÎÕÜ àéîõü",
]

CJK = [
    "你好，世界", "我喜欢吃苹果。", "机器学习是人工智能的一个分支。", "向量数据库用于相似性搜索。",
    "こんにちは世界", "東京タワーに行きました。", "ひらがなとカタカナと漢字", "今日はいい天気ですね",
    "안녕하세요", "저는 학생입니다.", "한국어 문장 임베딩", "繁體中文與简体中文",
    "中文 English 混合 text", "ｶﾀｶﾅ 半角", "日本語の文章をベクトルに変換する。",
]

SCRIPTS = [
    "Привет, мир!", "Москва — столица России.", "Γειά σου Κόσμε", "Η γρήγορη καφέ αλεπού",
    "مرحبا بالعالم", "اللغة العربية جميلة", "שלום עולם", "नमस्ते दुनिया", "मशीन लर्निंग",
    "สวัสดีชาวโลก", "Բարեւ աշխարհ", "გამარჯობა", "ሰላም ለዓለም", "Xin chào thế giới",
    "Ελληνικά και English μαζί",
]

EMOJI = [
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵🇺🇸🇫🇷", "I ❤️ NY", "Great job! 🎉🎉🎉", "🔥 hot take 🔥",
    "☕ + 📚 = 😊", "🙂🙃🙂🙃", "weather: ☀️🌧️❄️", "🧑‍💻 coding all night", "✅ done ❌ failed",
]

CODE = [
    "def f(x): return x * 2",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "SELECT id, name FROM users WHERE age > 30 ORDER BY name;",
    "#include <stdio.h>\nint main(void) { printf(\"hi\\n\"); return 0; }",
    "const add = (a, b) => a + b;",
    "git commit -m \"fix: off-by-one in tokenizer\"",
    "<div class=\"container\"><p>Hello</p></div>",
    "{\"key\": \"value\", \"list\": [1, 2, 3], \"nested\": {\"ok\": true}}",
    "https://example.com/path/to/page?query=1&lang=en#section",
    "user@example.org",
    "x = np.linalg.norm(v, axis=-1, keepdims=True)",
    "fn main() { println!(\"{}\", 1 + 1); }",
    "SELECT COUNT(*) FROM t;",
    "while True:\n    pass",
    "a_b_c snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
    "0x7fffffff & ~mask << 3",
]

NUMBERS = [
    "0", "1", "123456789", "3.14159265358979", "-273.15", "1e-9", "1,000,000", "$19.99",
    "50%", "2024-01-15", "12:30:45", "+1 (555) 123-4567", "192.168.0.1", "v1.2.3-rc.4",
    "1/2 + 3/4 = 5/4", "½ ¼ ¾ ² ³",
]

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "Vector databases store embeddings and answer nearest-neighbour queries.",
    "Sentence embeddings map text of any length to a fixed-size vector.",
    "The meeting has been moved to Thursday at 3 pm.",
    "Please reset your password using the link we sent you.",
    "I can't believe it's not butter!",
    "She sells seashells by the seashore.",
    "He said, \"I'll be back,\" and left.",
    "The stock market fell 3% on Monday after weak earnings reports.",
    "Photosynthesis converts light energy into chemical energy.",
    "The patient was prescribed 500 mg of amoxicillin twice daily.",
    "Do you know the way to San Jose?",
    "Water boils at 100 degrees Celsius at sea level.",
    "My flight was delayed by three hours, so I missed the connection.",
    "THIS SENTENCE IS WRITTEN IN CAPITAL LETTERS.",
    "this sentence is written in lower case letters.",
    "tHiS sEnTeNcE hAs MiXeD cAsE.",
]

PARAGRAPHS = [
    "Embeddings are dense vectors that capture the meaning of text. Similar texts end up close "
    "together in vector space. This property makes them useful for search, clustering and "
    "recommendation.",
    "The museum opens at nine. Tickets can be bought online or at the door. Children under "
    "twelve enter for free, and guided tours start every hour on the hour.",
    "It was a dark and stormy night; the rain fell in torrents, except at occasional intervals, "
    "when it was checked by a violent gust of wind which swept up the streets.",
    "To install the package, run the setup script. Then build the project with make. If the "
    "build fails, check that the compiler and the libraries are installed.",
    "Rome was not built in a day. Neither was any large software system. Start small, test "
    "often, and refactor when the design becomes clear.",
    "The mitochondria is the powerhouse of the cell. It produces ATP through oxidative "
    "phosphorylation. Cells with high energy needs contain many mitochondria.",
    "First line of a poem,\nsecond line that rhymes,\nthird line slightly longer than the others,"
    "\nand a last one.",
    "Dear customer,\n\nThank you for your order #12345. Your package will arrive within 3-5 "
    "business days.\n\nBest regards,\nThe Shop Team",
    "In 1969, Apollo 11 landed on the Moon. Neil Armstrong and Buzz Aldrin walked on the "
    "surface while Michael Collins orbited above. The mission returned safely to Earth on "
    "July 24.",
    "Le chat dort sur le canapé. Il fait beau aujourd'hui, alors nous irons au parc cet "
    "après-midi. Ensuite, nous dînerons chez mes grands-parents.",
    "Der schnelle braune Fuchs springt über den faulen Hund. Das ist ein bekannter Satz, der "
    "alle Buchstaben des Alphabets enthält.",
    "El aprendizaje automático es una rama de la inteligencia artificial. Permite a las "
    "computadoras aprender de los datos sin ser programadas explícitamente.",
    "人工智能正在改变我们的生活方式。从语音助手到自动驾驶汽车，这项技术无处不在。然而，"
    "它也带来了隐私和安全方面的挑战。",
    "Q: How do I compute cosine similarity?\nA: Divide the dot product of the two vectors by "
    "the product of their norms. For unit vectors, it is just the dot product.",
    "Error: segmentation fault (core dumped). The program tried to read address 0x0. Run it "
    "under gdb or AddressSanitizer to find the faulting line.",
    "Ingredients: 2 cups flour, 1 cup sugar, 3 eggs, 200 g butter. Preheat the oven to 180 °C. "
    "Mix everything, pour into a tin and bake for 40 minutes.",
    "The defendant pleaded not guilty. The trial is expected to last three weeks, and the jury "
    "will hear testimony from more than twenty witnesses.",
    "Breaking news: a magnitude 6.1 earthquake struck the region early this morning. No "
    "casualties have been reported so far, but several buildings were damaged.",
    "lol that was sooo funny 😂😂 cant stop laughing!!! u gotta see it tmrw",
    "Terms and conditions apply. Offer valid until 31 December while stocks last. See store "
    "for details. Not combinable with other promotions.",
]


class _Lcg:
    """Tiny deterministic PRNG (64-bit LCG), so the texts never depend on Python's random."""

    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFFFFFFFFFF

    def below(self, n):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return (self.s >> 33) % n


_VOCAB = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no "
    "model vector search index query token batch engine kernel memory thread latency cache "
    "river mountain city music garden window history science language network energy market "
    "quickly slowly carefully never always often seldom together apart beyond within around "
    "running jumping thinking building measuring embedding tokenizing normalizing computing "
    "Amsterdam Berlin Tokyo Nairobi Lima Oslo Sydney Toronto 1984 2001 42 3.5 100% café naïve"
).split()


def _random_words(seed, n_words):
    rng = _Lcg(seed)
    words = []
    for i in range(n_words):
        w = _VOCAB[rng.below(len(_VOCAB))]
        if i == 0 or words[-1].endswith("."):
            w = w[:1].upper() + w[1:]
        words.append(w)
        if rng.below(12) == 0:
            words[-1] += "."
        elif rng.below(15) == 0:
            words[-1] += ","
    return " ".join(words) + "."


def _long_texts():
    out = []
    # Random prose of growing length, up to several thousand characters.
    for k, n in enumerate([260, 300, 400, 550, 700, 900, 1200, 1500]):
        out.append(_random_words(1000 + k, n))
    # Exactly at and around the 256-token limit: "hello" is one token.
    out[1:1] = ["hello " * 254, "hello " * 255, ("hello " * 256).rstrip(), "hello " * 400]
    # All the paragraphs together, and joined with newlines.
    out.append(" ".join(PARAGRAPHS))
    out.append("\n".join(PARAGRAPHS[::-1]))
    # Repeated sentences and code.
    out.append(" ".join(SENTENCES) * 3)
    out.append("\n".join(CODE) * 4)
    # One token per character scripts, and multi-piece words.
    out.append("".join(CJK) * 6)
    out.append(" ".join(EMOJI) * 20)
    out.append(" ".join(str(i * 7919 % 100003) for i in range(400)))
    out.append(" ".join(WORDS) * 12)
    out.append(" ".join(ACCENTS) * 6)
    out.append(" ".join(SCRIPTS) * 6)
    out.append("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 60)
    out.append("word " * 2000)
    return out


def _medium_texts():
    out = []
    for k, n in enumerate([140, 30, 100, 60, 170, 45, 120, 80, 155, 70, 110, 90, 185, 130]):
        out.append(_random_words(2000 + k, n))
    return out


CATEGORIES = [
    ("words", WORDS),
    ("sentences", SENTENCES),
    ("long", _long_texts()),
    ("medium", _medium_texts()),
    ("phrases", PHRASES),
    ("paragraphs", PARAGRAPHS),
    ("edge", EDGE),
    ("cjk", CJK),
    ("punct", PUNCT),
    ("accents", ACCENTS),
    ("code", CODE),
    ("scripts", SCRIPTS),
    ("emoji", EMOJI),
    ("numbers", NUMBERS),
]


def golden_texts():
    """All texts, round-robin over the categories, duplicates dropped (first kept)."""
    queues = [list(t) for _, t in CATEGORIES]
    seen, order = set(), []
    while any(queues):
        for q in queues:
            if q:
                t = q.pop(0)
                if t not in seen:
                    seen.add(t)
                    order.append(t)
    return order


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out-dir", default=DEFAULT_OUT)
    args = ap.parse_args()

    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(args.model, device="cpu")
    model.eval()
    name = os.path.basename(os.path.normpath(args.model))
    texts = golden_texts()

    jsonl = os.path.join(args.out_dir, f"embeddings_{name}.jsonl")
    meta_path = os.path.join(args.out_dir, f"embeddings_{name}.meta.json")
    n_trunc = 0
    dim = None
    with open(jsonl, "w", encoding="utf-8", newline="\n") as f:
        for i, text in enumerate(texts):
            # preprocess() is what encode() feeds the model (tokenize() in sentence-transformers < 6).
            prep = getattr(model, "preprocess", None) or model.tokenize
            feats = prep([text])
            n_tokens = int(feats["attention_mask"][0].sum())
            assert n_tokens == feats["input_ids"].shape[1]
            emb = model.encode([text], batch_size=1, convert_to_numpy=True,
                               show_progress_bar=False)[0]
            assert emb.dtype == np.float32, emb.dtype
            dim = emb.shape[0]
            norm = float(np.linalg.norm(emb.astype(np.float64)))
            assert abs(norm - 1.0) < 1e-5, (i, norm)
            n_trunc += n_tokens == model.max_seq_length
            rec = {"text": text, "n_tokens": n_tokens,
                   "embedding": [float(f"{float(v):.9g}") for v in emb]}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    meta = {
        "model": name,
        "model_dir": os.path.relpath(args.model, REPO),
        "reference": "sentence_transformers.SentenceTransformer(model_dir, device='cpu')"
                     ".encode([text], batch_size=1, convert_to_numpy=True)",
        "modules": [type(m).__name__ for m in model],
        "max_seq_length": model.max_seq_length,
        "dimension": dim,
        "count": len(texts),
        "count_truncated_at_max_seq_length": n_trunc,
        "n_tokens": "len(model.preprocess([text])['input_ids'][0]): after truncation, "
                    "[CLS] and [SEP] included",
        "float_format": "float32 printed with 9 significant digits",
        "mixed_lengths_rule": "bench 'mixed' shape = n_tokens of lines 0..31 of the jsonl",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
        },
        "torch_num_threads": torch.get_num_threads(),
        "cpu": _cpu_model(),
    }
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(texts)} embeddings ({n_trunc} truncated at {model.max_seq_length} "
          f"tokens) to {os.path.relpath(jsonl, REPO)}", file=sys.stderr)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
