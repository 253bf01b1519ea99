from setuptools import find_packages, setup

setup(
    name="mingpt",
    version="0.2.0",
    description="An educational, object-oriented GPT in PyTorch: readable code with a production trainer.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["mingpt", "mingpt.*"]),
    python_requires=">=3.10",
    install_requires=[
        # A range, not a pin: 2.13 (the local CPU wheel here) satisfies it, and so do recent releases elsewhere.
        "torch>=2.1,<3",
        "numpy",
        "regex",
        "requests",
        "safetensors",
        "tqdm",
    ],
    extras_require={
        # Reference libraries the tests hold mingpt against; never imported by the package. TransformerLens 2.18 is
        # the last with HookedTransformer (TL 4 removed it) and needs huggingface-hub < 1, hence transformers 4.x.
        # TL 2.18 also pins numpy < 2, and pyarrow 26 refuses to import under numpy 1.x (TRL's DPOTrainer imports
        # it through `datasets`), hence pyarrow < 26 here.
        # pytest-xdist runs the suite in one process per core (pytest.ini's -n auto).
        "test": ["pytest", "pytest-xdist", "transformers>=4.57,<5", "transformer_lens==2.18.0", "peft", "trl",
                 "tiktoken", "matplotlib", "pyarrow<26", "nbgrader", "selenium"],
        "gpt2": ["pyarrow", "tiktoken"],  # projects/gpt2: parquet corpora, tiktoken as an alternative encoder
        "notebooks": ["nbclient", "nbformat", "ipykernel", "matplotlib"],
    },
    license="MIT",
)
