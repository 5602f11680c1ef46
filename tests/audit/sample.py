"""Realistic :class:`AuditReport` objects for the tests of the renderers (and anyone else).

Four releases, built by hand the way the audit engine would report them:

- :func:`apache_open_weights` — all-MiniLM-L6-v2 style: Apache-2.0 text, weights and inference
  code, many public datasets listed, training code only linked (open weights, MOF Class III
  partly met).
- :func:`llama_restricted` — Llama-3.1-8B-Instruct style: the Llama 3.1 Community License with
  its 700M MAU, naming, attribution and acceptable-use clauses (restricted weights, unclassified).
- :func:`olmo_open_source_ai` — OLMo-7B style: everything released under Apache-2.0 and
  open data licences, data documented, ``model-index`` results (Open Source AI, MOF Class I).
- :func:`closed_empty` — a directory with a config and nothing else (closed, no card).

:func:`samples` returns them all by name.
"""

from __future__ import annotations

from modelseal.audit.model import (
    AuditReport,
    Check,
    CheckStatus,
    Citation,
    Component,
    DocItem,
    DocReport,
    DocStatus,
    Evidence,
    Finding,
    LicenceCategory,
    LicenceResult,
    MofComponentResult,
    MofResult,
    OsaidResult,
    OsaidVerdict,
    ParamStats,
    Restriction,
    Severity,
)

ENGINE = {"name": "modelseal.audit", "version": "0.1.0"}

OSAID = Citation(
    "OSI Open Source AI Definition 1.0",
    "Preferred form to make modifications to machine-learning systems",
    "https://opensource.org/ai/open-source-ai-definition",
)
HF_TEMPLATE = Citation(
    "Hugging Face model card template",
    "",
    "https://github.com/huggingface/huggingface_hub/blob/main/src/huggingface_hub/templates/modelcard_template.md",
)
AI_ACT = "Regulation (EU) 2024/1689"
AI_ACT_URL = "https://eur-lex.europa.eu/eli/reg/2024/1689/oj"

# (id, name, class, required) as the Model Openness Framework 1.0 lists them
MOF = {
    9: ("Model architecture", 3, True),
    10: ("Model parameters (Final)", 3, True),
    12: ("Evaluation results", 3, True),
    13: ("Model card", 3, True),
    14: ("Data card", 3, True),
    11: ("Technical report", 3, True),
    20: ("Sample model outputs", 3, False),
    7: ("Training code", 2, True),
    8: ("Inference code", 2, True),
    18: ("Evaluation code", 2, True),
    19: ("Evaluation data", 2, True),
    22: ("Supporting libraries and tools", 2, False),
    15: ("Datasets", 1, True),
    16: ("Data preprocessing code", 1, True),
    24: ("Model parameters (Intermediate)", 1, True),
    21: ("Research paper", 1, True),
    17: ("Model metadata", 1, False),
}

# (rule, title, provision in the HF template)
HF_ITEMS = (
    ("HF-CARD-DEVELOPED-BY", "Developed by", "Model Details \u203a Model Description"),
    ("HF-CARD-LICENSE", "License", "Model Details \u203a Model Description"),
    ("HF-CARD-USES-DIRECT", "Direct Use", "Uses \u203a Direct Use"),
    ("HF-CARD-USES-OOS", "Out-of-Scope Use", "Uses \u203a Out-of-Scope Use"),
    ("HF-CARD-BIAS", "Bias, Risks, and Limitations", "Bias, Risks, and Limitations"),
    ("HF-CARD-TRAINING-DATA", "Training Data", "Training Details \u203a Training Data"),
    ("HF-CARD-TRAINING-PROC", "Training Procedure", "Training Details \u203a Training Procedure"),
    ("HF-CARD-EVAL-RESULTS", "Evaluation Results", "Evaluation \u203a Results"),
    ("HF-CARD-ENVIRONMENT", "Environmental Impact", "Environmental Impact"),
    ("HF-CARD-CONTACT", "Model Card Contact", "Model Card Contact"),
)
# (rule, title, provision in Annex XI)
EU_ITEMS = (
    ("EU-AIA-XI-1-1-a", "Tasks and type of AI systems", "Annex XI, Section 1(1)(a)"),
    ("EU-AIA-XI-1-1-b", "Acceptable use policies", "Annex XI, Section 1(1)(b)"),
    ("EU-AIA-XI-1-1-c", "Release date and methods of distribution", "Annex XI, Section 1(1)(c)"),
    ("EU-AIA-XI-1-1-d", "Architecture and number of parameters", "Annex XI, Section 1(1)(d)"),
    ("EU-AIA-XI-1-1-e", "Modality and format of inputs and outputs", "Annex XI, Section 1(1)(e)"),
    ("EU-AIA-XI-1-1-f", "Licence", "Annex XI, Section 1(1)(f)"),
    ("EU-AIA-XI-1-2-c", "Training, testing and validation data", "Annex XI, Section 1(2)(c)"),
    ("EU-AIA-XI-1-2-d", "Computational resources used for training", "Annex XI, Section 1(2)(d)"),
    ("EU-AIA-XI-1-2-e", "Known or estimated energy consumption", "Annex XI, Section 1(2)(e)"),
)

# items: rule -> (status, found_in, excerpt)
DocFacts = dict[str, tuple[DocStatus, str, str]]


def hf_pack(facts: DocFacts) -> DocReport:
    items = tuple(
        DocItem(
            rule,
            title,
            facts.get(rule, (DocStatus.MISSING, "", ""))[0],
            facts.get(rule, (DocStatus.MISSING, "", ""))[1],
            facts.get(rule, (DocStatus.MISSING, "", ""))[2],
            Citation(HF_TEMPLATE.doc, provision, HF_TEMPLATE.url),
        )
        for rule, title, provision in HF_ITEMS
    )
    return DocReport("hf-model-card", "Hugging Face model card", HF_TEMPLATE, items)


def eu_pack(facts: DocFacts) -> DocReport:
    items = tuple(
        DocItem(
            rule,
            title,
            facts.get(rule, (DocStatus.MISSING, "", ""))[0],
            facts.get(rule, (DocStatus.MISSING, "", ""))[1],
            facts.get(rule, (DocStatus.MISSING, "", ""))[2],
            Citation(AI_ACT, provision, AI_ACT_URL),
        )
        for rule, title, provision in EU_ITEMS
    )
    return DocReport(
        "eu-ai-act-annex-xi",
        "EU AI Act, Annex XI technical documentation (Section 1)",
        Citation(AI_ACT, "Art. 53(1)(a) and Annex XI", AI_ACT_URL),
        items,
    )


def osaid_checks(statuses: dict[str, tuple[CheckStatus, tuple[str, ...]]]) -> tuple[Check, ...]:
    titles = {
        "OSAID-PARAM-1": ("Parameters are released", "Parameters"),
        "OSAID-PARAM-2": ("Parameters under OSI-approved terms", "Parameters"),
        "OSAID-CODE-1": ("Inference and architecture code under an OSI licence", "Code"),
        "OSAID-CODE-2": ("Training and data-processing code available", "Code"),
        "OSAID-DATA-1": ("Complete description of the training data", "Data Information (1)"),
        "OSAID-DATA-2": ("Listing of publicly available training data", "Data Information (2)"),
        "OSAID-DATA-3": ("Listing of training data from third parties", "Data Information (3)"),
    }
    return tuple(
        Check(
            rule,
            titles[rule][0],
            status,
            reasons,
            Citation(OSAID.doc, titles[rule][1], OSAID.url),
        )
        for rule, (status, reasons) in statuses.items()
    )


def mof_result(
    statuses: dict[int, tuple[str, str | None]], progress: dict[int, float], source: str
) -> MofResult:
    components = tuple(
        MofComponentResult(
            mof_id,
            MOF[mof_id][0],
            MOF[mof_id][1],
            MOF[mof_id][2],
            status,
            licence,
            type_appropriate=status == "included",
        )
        for mof_id, (status, licence) in statuses.items()
    )
    classification = min((k for k in (1, 2, 3) if progress.get(k, 0) >= 100), default=0)
    labels = {
        0: "Unclassified",
        3: "Class III - Open Model",
        2: "Class II - Open Tooling Model",
        1: "Class I - Open Science Model",
    }
    return MofResult(progress, classification, labels[classification], components, (), source)


def component(
    mof_id: int, licence: str | None, source: str, detail: str, *evidence: Evidence
) -> Component:
    return Component(mof_id, MOF[mof_id][0], True, licence, source, tuple(evidence), detail)


# --- the samples ---------------------------------------------------------------------------


def apache_open_weights() -> AuditReport:
    """Apache-2.0 sentence-embedding model: open weights, data only listed, training code linked."""
    lic_ev = Evidence("LICENSE", "line 1", "Apache License Version 2.0, January 2004")
    licence = LicenceResult(
        "Apache-2.0",
        "Apache License 2.0",
        LicenceCategory.OSI,
        True,
        lic_ev,
        "text",
        0.99,
        (),
        card_tag="apache-2.0",
        rule="LIC-ID-Apache-2.0",
    )
    datasets = [
        "s2orc",
        "flax-sentence-embeddings/stackexchange_xml",
        "ms_marco",
        "gooaq",
        "yahoo_answers_topics",
        "code_search_net",
        "search_qa",
        "eli5",
        "snli",
        "multi_nli",
        "wikihow",
        "natural_questions",
        "trivia_qa",
        "embedding-data/sentence-compression",
        "embedding-data/flickr30k-captions",
        "embedding-data/altlex",
        "embedding-data/simple-wiki",
        "embedding-data/QQP",
        "embedding-data/SPECTER",
        "embedding-data/PAQ_pairs",
        "embedding-data/WikiAnswers",
    ]
    metadata = {
        "language": "en",
        "license": "apache-2.0",
        "library_name": "sentence-transformers",
        "tags": ["sentence-transformers", "feature-extraction", "sentence-similarity"],
        "datasets": datasets,
        "pipeline_tag": "sentence-similarity",
    }
    components = (
        component(
            9,
            "Apache-2.0",
            "global:code",
            "config.json (BertModel)",
            Evidence("config.json", "architectures", "BertModel"),
        ),
        component(
            10,
            "Apache-2.0",
            "LICENSE",
            "safetensors, 1 file; also ONNX, OpenVINO",
            Evidence("model.safetensors"),
        ),
        component(
            13,
            "Apache-2.0",
            "LICENSE",
            "README.md, 9 sections",
            Evidence("README.md", "line 1", "# all-MiniLM-L6-v2"),
        ),
        component(
            12,
            "Apache-2.0",
            "LICENSE",
            "card section Evaluation Results",
            Evidence("README.md", "## Evaluation Results"),
        ),
        component(
            8,
            "Apache-2.0",
            "global:code",
            "sentence-transformers usage in the card",
            Evidence("README.md", "## Usage (Sentence-Transformers)"),
        ),
        Component(
            7,
            MOF[7][0],
            False,
            None,
            "",
            (Evidence("README.md", "line 142", "train_script.py"),),
            "linked: train_script.py (not in the release)",
        ),
    )
    mof = mof_result(
        {
            9: ("included", "Apache-2.0"),
            10: ("included", "Apache-2.0"),
            12: ("included", "Apache-2.0"),
            13: ("included", "Apache-2.0"),
            14: ("missing", None),
            11: ("missing", None),
            8: ("included", "Apache-2.0"),
            7: ("missing", None),
        },
        {3: 66.66666666666667, 2: 0.0, 1: 0.0},
        "release",
    )
    osaid = OsaidResult(
        OsaidVerdict.OPEN_WEIGHTS,
        "The parameters are under OSI-approved terms, but the data information and the "
        "training code the definition requires are not in the release.",
        osaid_checks(
            {
                "OSAID-PARAM-1": (CheckStatus.MET, ("model.safetensors (22.7M parameters)",)),
                "OSAID-PARAM-2": (CheckStatus.MET, ("Apache-2.0 is OSI-approved",)),
                "OSAID-CODE-1": (CheckStatus.MET, ("library_name: sentence-transformers",)),
                "OSAID-CODE-2": (
                    CheckStatus.NOT_DETERMINABLE,
                    ("the card links train_script.py, which is outside the release",),
                ),
                "OSAID-DATA-1": (
                    CheckStatus.PARTIAL,
                    ("the Training data section lists sources but not the filtering",),
                ),
                "OSAID-DATA-2": (CheckStatus.MET, ("21 datasets listed in metadata.datasets",)),
                "OSAID-DATA-3": (CheckStatus.NOT_DETERMINABLE, ("no statement either way",)),
            }
        ),
        OSAID,
    )
    docs = (
        hf_pack(
            {
                "HF-CARD-LICENSE": (DocStatus.PRESENT, "metadata.license", "apache-2.0"),
                "HF-CARD-USES-DIRECT": (
                    DocStatus.PRESENT,
                    "README.md \u203a Intended uses",
                    "Our model is intended to be used as a sentence and short paragraph encoder.",
                ),
                "HF-CARD-TRAINING-DATA": (
                    DocStatus.PRESENT,
                    "README.md \u203a Training procedure \u203a Fine-tuning",
                    "We use the concatenation from multiple datasets to fine-tune our model. "
                    "The total number of sentence pairs is above 1 billion sentences.",
                ),
                "HF-CARD-TRAINING-PROC": (
                    DocStatus.PRESENT,
                    "README.md \u203a Training procedure",
                    "We fine-tune the model using a contrastive objective.",
                ),
                "HF-CARD-EVAL-RESULTS": (
                    DocStatus.PLACEHOLDER,
                    "README.md \u203a Evaluation Results",
                    "For an automated evaluation of this model, see the Sentence Embeddings "
                    "Benchmark",
                ),
            }
        ),
        eu_pack(
            {
                "EU-AIA-XI-1-1-a": (
                    DocStatus.PRESENT,
                    "README.md \u203a Intended uses",
                    "information retrieval, clustering or sentence similarity tasks",
                ),
                "EU-AIA-XI-1-1-d": (
                    DocStatus.PRESENT,
                    "config.json; model.safetensors header",
                    "BertModel, 22,713,216 parameters",
                ),
                "EU-AIA-XI-1-1-e": (
                    DocStatus.PRESENT,
                    "README.md \u203a Intended uses",
                    "input text longer than 256 word pieces is truncated",
                ),
                "EU-AIA-XI-1-1-f": (DocStatus.PRESENT, "LICENSE", "Apache-2.0"),
                "EU-AIA-XI-1-2-c": (
                    DocStatus.PRESENT,
                    "README.md \u203a Training data",
                    "We use the concatenation from multiple datasets",
                ),
                "EU-AIA-XI-1-2-d": (
                    DocStatus.PRESENT,
                    "README.md \u203a Hyper parameters",
                    "We trained our model on a TPU v3-8 for 100k steps using a batch size of 1024",
                ),
                "EU-AIA-XI-1-2-e": (DocStatus.NOT_DETERMINABLE, "", ""),
            }
        ),
    )
    params = ParamStats(
        22713216,
        {"F32": 22713216},
        ("model.safetensors",),
        method="safetensors headers",
    )
    findings = (
        Finding(
            "docs.placeholder",
            Severity.WARNING,
            "The Evaluation Results section only points to an external benchmark.",
            HF_TEMPLATE,
            (Evidence("README.md", "line 58", "For an automated evaluation of this model"),),
        ),
        Finding(
            "osaid.code-outside-release",
            Severity.INFO,
            "Training code is linked from the card but not part of the release, so its "
            "licence cannot be checked offline.",
            Citation(OSAID.doc, "Code", OSAID.url),
            (Evidence("README.md", "line 142", "train_script.py"),),
        ),
    )
    return AuditReport(
        release="all-MiniLM-L6-v2",
        root="/models/all-MiniLM-L6-v2",
        engine=dict(ENGINE),
        files={
            "weights": ["model.safetensors", "onnx/model.onnx", "pytorch_model.bin"],
            "config": ["config.json", "sentence_bert_config.json", "modules.json"],
            "tokenizer": ["tokenizer.json", "tokenizer_config.json", "vocab.txt"],
            "card": ["README.md"],
            "licence": ["LICENSE"],
        },
        metadata=metadata,
        components=components,
        licence=licence,
        osaid=osaid,
        mof=mof,
        docs=docs,
        params=params,
        findings=findings,
    )


LLAMA_MAU = (
    "If, on the Llama 3.1 version release date, the monthly active users of the products or "
    "services made available by or for Licensee, or Licensee's affiliates, is greater than 700 "
    "million monthly active users in the preceding calendar month, you must request a license "
    "from Meta, which Meta may grant to you in its sole discretion, and you are not authorized "
    "to exercise any of the rights under this Agreement unless or until Meta otherwise "
    "expressly grants you such rights."
)
LLAMA_NAMING = (
    "If you use the Llama Materials or any outputs or results of the Llama Materials to create, "
    "train, fine tune, or otherwise improve an AI model, which is distributed or made available, "
    "you shall also include \u201cLlama\u201d at the beginning of any such AI model name."
)
LLAMA_ATTRIBUTION = (
    "If you distribute or make available the Llama Materials (or any derivative works thereof), "
    "or a product or service (including another AI model) that contains any of them, you shall "
    "(A) provide a copy of this Agreement with any such Llama Materials; and (B) prominently "
    "display \u201cBuilt with Llama\u201d on a related website, user interface, blogpost, about "
    "page, or product documentation."
)
LLAMA_AUP = (
    "Your use of the Llama Materials must comply with applicable laws and regulations "
    "(including trade compliance laws and regulations) and adhere to the Acceptable Use Policy "
    "for the Llama Materials (available at https://llama.meta.com/llama3_1/use-policy), which "
    "is hereby incorporated by reference into this Agreement."
)


def llama_restricted() -> AuditReport:
    """Llama 3.1 Community License: MAU threshold, naming and attribution duties, AUP."""
    restrictions = (
        Restriction(
            "user-threshold",
            "LIC-R-MAU",
            "a separate licence from Meta is needed above 700 million monthly active users",
            LLAMA_MAU,
            Evidence("LICENSE", "line 52", "greater than 700 million monthly active users"),
        ),
        Restriction(
            "naming",
            "LIC-R-NAMING",
            "models trained on Llama materials or outputs must start their name with "
            "\u201cLlama\u201d",
            LLAMA_NAMING,
            Evidence("LICENSE", "line 27", "include \u201cLlama\u201d at the beginning"),
        ),
        Restriction(
            "attribution",
            "LIC-R-ATTRIBUTION",
            "redistributors must display \u201cBuilt with Llama\u201d",
            LLAMA_ATTRIBUTION,
            Evidence("LICENSE", "line 22", "prominently display \u201cBuilt with Llama\u201d"),
        ),
        Restriction(
            "acceptable-use",
            "LIC-R-AUP",
            "use must follow Meta's Acceptable Use Policy, incorporated by reference",
            LLAMA_AUP,
            Evidence("LICENSE", "line 36", "adhere to the Acceptable Use Policy"),
        ),
    )
    licence = LicenceResult(
        "llama3.1",
        "Llama 3.1 Community License Agreement",
        LicenceCategory.RESTRICTED,
        False,
        Evidence("LICENSE", "line 1", "LLAMA 3.1 COMMUNITY LICENSE AGREEMENT"),
        "text",
        0.97,
        restrictions,
        card_tag="llama3.1",
        rule="LIC-ID-llama3.1",
    )
    metadata = {
        "language": ["en", "de", "fr", "it", "pt", "hi", "es", "th"],
        "license": "llama3.1",
        "base_model": "meta-llama/Meta-Llama-3.1-8B",
        "pipeline_tag": "text-generation",
        "library_name": "transformers",
        "tags": ["facebook", "meta", "pytorch", "llama", "llama-3"],
        "extra_gated_prompt": "### LLAMA 3.1 COMMUNITY LICENSE AGREEMENT",
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
    }
    components = (
        component(
            9, "llama3.1", "LICENSE", "config.json (LlamaForCausalLM)", Evidence("config.json")
        ),
        component(
            10,
            "llama3.1",
            "LICENSE",
            "safetensors, 4 shards",
            Evidence("model-00001-of-00004.safetensors"),
        ),
        component(13, "llama3.1", "LICENSE", "README.md", Evidence("README.md")),
        component(
            12,
            "llama3.1",
            "LICENSE",
            "card section Benchmark scores",
            Evidence("README.md", "## Benchmark scores"),
        ),
        component(
            8, "llama3.1", "LICENSE", "generation_config.json", Evidence("generation_config.json")
        ),
    )
    mof = mof_result(
        {
            9: ("invalid", "llama3.1"),
            10: ("invalid", "llama3.1"),
            12: ("invalid", "llama3.1"),
            13: ("invalid", "llama3.1"),
            14: ("missing", None),
            11: ("unlicensed", None),
            8: ("invalid", "llama3.1"),
            21: ("unlicensed", None),
        },
        {3: 0.0, 2: 0.0, 1: 0.0},
        "release",
    )
    osaid = OsaidResult(
        OsaidVerdict.RESTRICTED_WEIGHTS,
        "The weights are public, but under the Llama 3.1 Community License, which restricts "
        "use by user count and requires naming and attribution; it is not OSI-approved.",
        osaid_checks(
            {
                "OSAID-PARAM-1": (CheckStatus.MET, ("4 safetensors shards, 8.03B parameters",)),
                "OSAID-PARAM-2": (
                    CheckStatus.NOT_MET,
                    ("llama3.1 is not OSI-approved", "700M MAU threshold (LIC-R-MAU)"),
                ),
                "OSAID-CODE-1": (
                    CheckStatus.PARTIAL,
                    ("architecture in transformers (Apache-2.0)",),
                ),
                "OSAID-CODE-2": (CheckStatus.NOT_MET, ("no training code is linked or shipped",)),
                "OSAID-DATA-1": (
                    CheckStatus.NOT_MET,
                    (
                        "'a new mix of publicly available online data' is not a complete "
                        "description",
                    ),
                ),
                "OSAID-DATA-2": (CheckStatus.NOT_MET, ("no dataset is listed",)),
                "OSAID-DATA-3": (CheckStatus.NOT_MET, ("no third-party data is listed",)),
            }
        ),
        OSAID,
    )
    docs = (
        hf_pack(
            {
                "HF-CARD-DEVELOPED-BY": (
                    DocStatus.PRESENT,
                    "README.md \u203a Model Information",
                    "Meta",
                ),
                "HF-CARD-LICENSE": (DocStatus.PRESENT, "metadata.license", "llama3.1"),
                "HF-CARD-USES-DIRECT": (
                    DocStatus.PRESENT,
                    "README.md \u203a Intended Use",
                    "Llama 3.1 is intended for commercial and research use in multiple languages.",
                ),
                "HF-CARD-USES-OOS": (
                    DocStatus.PRESENT,
                    "README.md \u203a Intended Use \u203a Out-of-scope",
                    "Use in any manner that violates applicable laws or regulations.",
                ),
                "HF-CARD-BIAS": (
                    DocStatus.PRESENT,
                    "README.md \u203a Critical and other risks",
                    "CBRNE helpfulness, child safety and cyber attack enablement were assessed.",
                ),
                "HF-CARD-TRAINING-DATA": (
                    DocStatus.PRESENT,
                    "README.md \u203a Training Data",
                    "Llama 3.1 was pretrained on ~15 trillion tokens of data from publicly "
                    "available sources.",
                ),
                "HF-CARD-EVAL-RESULTS": (
                    DocStatus.PRESENT,
                    "README.md \u203a Benchmark scores",
                    "MMLU 5-shot macro_avg/acc 69.4",
                ),
                "HF-CARD-ENVIRONMENT": (
                    DocStatus.PRESENT,
                    "README.md \u203a Training Greenhouse Gas Emissions",
                    "Estimated total location-based greenhouse gas emissions were 11,390 tons "
                    "CO2eq for training.",
                ),
                "HF-CARD-TRAINING-PROC": (
                    DocStatus.PLACEHOLDER,
                    "README.md \u203a Training Factors",
                    "[More Information Needed]",
                ),
            }
        ),
        eu_pack(
            {
                "EU-AIA-XI-1-1-a": (
                    DocStatus.PRESENT,
                    "README.md \u203a Intended Use",
                    "assistant-like chat; natural language generation tasks",
                ),
                "EU-AIA-XI-1-1-b": (
                    DocStatus.PRESENT,
                    "LICENSE",
                    "adhere to the Acceptable Use Policy for the Llama Materials",
                ),
                "EU-AIA-XI-1-1-c": (
                    DocStatus.PRESENT,
                    "README.md \u203a Model Release Date",
                    "July 23, 2024",
                ),
                "EU-AIA-XI-1-1-d": (
                    DocStatus.PRESENT,
                    "config.json; safetensors headers",
                    "LlamaForCausalLM, 8,030,261,248 parameters",
                ),
                "EU-AIA-XI-1-1-e": (
                    DocStatus.PRESENT,
                    "README.md \u203a Model Information",
                    "Input: multilingual text; Output: multilingual text and code",
                ),
                "EU-AIA-XI-1-1-f": (DocStatus.PRESENT, "LICENSE", "Llama 3.1 Community License"),
                "EU-AIA-XI-1-2-c": (
                    DocStatus.PLACEHOLDER,
                    "README.md \u203a Training Data",
                    "a new mix of publicly available online data",
                ),
                "EU-AIA-XI-1-2-d": (
                    DocStatus.PRESENT,
                    "README.md \u203a Hardware and Software",
                    "39.3M GPU hours of computation on H100-80GB",
                ),
                "EU-AIA-XI-1-2-e": (
                    DocStatus.PRESENT,
                    "README.md \u203a Training Greenhouse Gas Emissions",
                    "11,390 tons CO2eq",
                ),
            }
        ),
    )
    params = ParamStats(
        8030261248,
        {"BF16": 8030261248},
        tuple(f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)),
        training_tokens=15 * 10**12,
        training_tokens_source=Evidence(
            "README.md",
            "line 218",
            "Llama 3.1 was pretrained on ~15 trillion tokens of data from publicly available "
            "sources.",
        ),
        compute_flops=6.0 * 8030261248 * 15 * 10**12,
        method="safetensors headers; compute = 6 * N * D",
    )
    findings = (
        Finding(
            "licence.restrictive-terms",
            Severity.WARNING,
            "The licence restricts use by monthly active users and imposes naming and "
            "attribution duties; the weights are not under OSI-approved terms.",
            Citation(OSAID.doc, "Parameters", OSAID.url),
            (restrictions[0].evidence, restrictions[1].evidence),
        ),
        Finding(
            "docs.placeholder",
            Severity.WARNING,
            "Training Factors is a template placeholder.",
            HF_TEMPLATE,
            (Evidence("README.md", "line 210", "[More Information Needed]"),),
        ),
        Finding(
            "mof.licence-not-open",
            Severity.INFO,
            "No component counts as included for the MOF: the Llama 3.1 licence is not an "
            "open licence in the framework's sense.",
            Citation("Model Openness Framework 1.0 (LF AI & Data)", "Licences"),
        ),
    )
    return AuditReport(
        release="Llama-3.1-8B-Instruct",
        root="/models/Llama-3.1-8B-Instruct",
        engine=dict(ENGINE),
        files={
            "weights": [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)],
            "config": ["config.json", "generation_config.json", "model.safetensors.index.json"],
            "tokenizer": ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"],
            "card": ["README.md", "USE_POLICY.md"],
            "licence": ["LICENSE"],
        },
        metadata=metadata,
        components=components,
        licence=licence,
        osaid=osaid,
        mof=mof,
        docs=docs,
        params=params,
        findings=findings,
    )


def olmo_open_source_ai() -> AuditReport:
    """Everything open: weights, code, data, checkpoints, paper; MOF Class I."""
    licence = LicenceResult(
        "Apache-2.0",
        "Apache License 2.0",
        LicenceCategory.OSI,
        True,
        Evidence("LICENSE", "line 1", "Apache License Version 2.0, January 2004"),
        "text",
        0.99,
        card_tag="apache-2.0",
        rule="LIC-ID-Apache-2.0",
    )
    metadata = {
        "license": "apache-2.0",
        "datasets": ["allenai/dolma"],
        "language": ["en"],
        "pipeline_tag": "text-generation",
        "library_name": "transformers",
        "model_type": "olmo",
        "architectures": ["OLMoForCausalLM"],
        "co2_eq_emissions": {
            "emissions": 75050000,
            "source": "OLMo paper",
            "training_type": "pre-training",
            "hardware_used": "AMD MI250X, NVIDIA A100-40GB",
        },
        "model-index": [
            {
                "name": "OLMo-7B",
                "results": [
                    {
                        "task": {"type": "text-generation", "name": "Text Generation"},
                        "dataset": {"type": "ai2_arc", "name": "ARC Challenge", "split": "test"},
                        "metrics": [{"type": "acc", "value": 48.5, "name": "accuracy"}],
                    },
                    {
                        "task": {"type": "text-generation"},
                        "dataset": {"type": "hellaswag", "name": "HellaSwag"},
                        "metrics": [{"type": "acc_norm", "value": 76.4}],
                    },
                ],
            }
        ],
    }
    included_open = {
        mof_id: ("included", "CC-BY-4.0" if MOF[mof_id][0] in {"Research paper"} else "Apache-2.0")
        for mof_id in MOF
    }
    included_open[15] = ("included", "ODC-By-1.0")
    included_open[19] = ("included", "ODC-By-1.0")
    mof = mof_result(included_open, {3: 100.0, 2: 100.0, 1: 100.0}, "release + mof:olmo.yml")
    components = tuple(
        component(
            mof_id,
            lic,
            "component" if mof_id in (15, 19, 21) else "global:distribution",
            f"listed in olmo.yml ({MOF[mof_id][0].lower()})",
            Evidence("mof:olmo.yml", f"components[{i}]"),
        )
        for i, (mof_id, (_, lic)) in enumerate(sorted(included_open.items()))
    )
    all_met = {
        rule: (CheckStatus.MET, (reason,))
        for rule, reason in (
            ("OSAID-PARAM-1", "final and intermediate checkpoints released"),
            ("OSAID-PARAM-2", "Apache-2.0 is OSI-approved"),
            ("OSAID-CODE-1", "modeling code in the OLMo repository, Apache-2.0"),
            ("OSAID-CODE-2", "training and data-processing code listed in the MOF file"),
            ("OSAID-DATA-1", "Dolma datasheet describes sources, filtering and deduplication"),
            ("OSAID-DATA-2", "allenai/dolma listed with where to obtain it"),
            ("OSAID-DATA-3", "the datasheet states that no third-party paid data was used"),
        )
    }
    osaid = OsaidResult(
        OsaidVerdict.OPEN_SOURCE_AI,
        "Parameters, code and data information are all available under OSI-approved or open terms.",
        osaid_checks(all_met),
        OSAID,
    )
    present: DocFacts = {rule: (DocStatus.PRESENT, "README.md", "") for rule, _, _ in HF_ITEMS}
    present["HF-CARD-USES-DIRECT"] = (
        DocStatus.PRESENT,
        "README.md \u203a Uses",
        "OLMo is intended for research on language models.",
    )
    present["HF-CARD-BIAS"] = (
        DocStatus.PRESENT,
        "README.md \u203a Bias, Risks, and Limitations",
        "Like any base language model, OLMo can be prompted to generate harmful content.",
    )
    present["HF-CARD-ENVIRONMENT"] = (
        DocStatus.PRESENT,
        "README.md \u203a Environmental Impact",
        "OLMo-7B was trained on the LUMI and MosaicML clusters; estimated emissions 75.05 tCO2eq.",
    )
    eu_present: DocFacts = {rule: (DocStatus.PRESENT, "README.md", "") for rule, _, _ in EU_ITEMS}
    eu_present["EU-AIA-XI-1-1-b"] = (DocStatus.NOT_DETERMINABLE, "", "")
    params = ParamStats(
        6888095744,
        {"F32": 6888095744},
        ("model.safetensors",),
        training_tokens=2460 * 10**9,
        training_tokens_source=Evidence("README.md", "line 40", "trained on 2.46T tokens"),
        compute_flops=6.0 * 6888095744 * 2460 * 10**9,
        method="safetensors headers; compute = 6 * N * D",
    )
    return AuditReport(
        release="OLMo-7B",
        root="/models/OLMo-7B",
        engine=dict(ENGINE),
        files={
            "weights": ["model.safetensors"],
            "config": ["config.json"],
            "code": ["modeling_olmo.py", "configuration_olmo.py"],
            "card": ["README.md"],
            "licence": ["LICENSE"],
        },
        metadata=metadata,
        components=components,
        licence=licence,
        osaid=osaid,
        mof=mof,
        docs=(hf_pack(present), eu_pack(eu_present)),
        params=params,
        findings=(),
    )


def closed_empty() -> AuditReport:
    """A directory with a config.json only: no weights, no card, no licence."""
    licence = LicenceResult(
        None, "", LicenceCategory.UNKNOWN, False, None, "none", 0.0, (), card_tag=None, rule=""
    )
    osaid = OsaidResult(
        OsaidVerdict.CLOSED,
        "No model parameters are in the release.",
        osaid_checks(
            {
                "OSAID-PARAM-1": (CheckStatus.NOT_MET, ("no weight file found",)),
                "OSAID-PARAM-2": (CheckStatus.NOT_MET, ("no licence found",)),
            }
        ),
        OSAID,
    )
    mof = MofResult({1: 0.0, 2: 0.0, 3: 0.0}, 0, "Unclassified", (), (), "release")
    findings = (
        Finding(
            "card.missing",
            Severity.ERROR,
            "The release has no model card (README.md).",
            HF_TEMPLATE,
        ),
        Finding(
            "licence.missing",
            Severity.ERROR,
            "No licence file and no licence tag were found.",
            Citation(OSAID.doc, "Parameters", OSAID.url),
        ),
    )
    return AuditReport(
        release="internal-model",
        root="/srv/releases/internal-model",
        engine=dict(ENGINE),
        files={"config": ["config.json"]},
        metadata={},
        components=(),
        licence=licence,
        osaid=osaid,
        mof=mof,
        docs=(hf_pack({}),),
        params=ParamStats(None, method="no safetensors or GGUF weights"),
        findings=findings,
    )


def samples() -> dict[str, AuditReport]:
    """All sample reports by name."""
    return {
        "apache": apache_open_weights(),
        "llama": llama_restricted(),
        "olmo": olmo_open_source_ai(),
        "closed": closed_empty(),
    }
