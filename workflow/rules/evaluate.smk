# 5. Evaluation on the validation split: the paper's Figs. 3-5, the dose study and the headline
# numbers of the report's top page. Each evaluation loads TensorFlow once for all its figures.


rule evaluate_classifier:
    input:
        model=f"{RESULTS}/models/classifier.keras",
        history=f"{RESULTS}/models/classifier_history.csv",
        dataset=f"{RESULTS}/datasets/classify.h5",
        manifest=f"{RESULTS}/datasets/classify.csv",
    output:
        metrics=f"{RESULTS}/metrics/classifier.json",
        predictions=f"{RESULTS}/metrics/classifier_predictions.csv",
        dose=f"{RESULTS}/metrics/classifier_dose.csv",
        training=eval_figure(
            "classifier",
            "training",
            "classifier_training",
            "3. Classification",
            "Training",
        ),
        performance=eval_figure(
            "classifier",
            "performance",
            "classifier_performance",
            "3. Classification",
            "Validation",
        ),
        groups=eval_figure(
            "classifier",
            "accuracy_by_group",
            "classifier_groups",
            "3. Classification",
            "Validation",
        ),
        examples=eval_figure(
            "classifier",
            "examples",
            "classifier_examples",
            "3. Classification",
            "Examples",
        ),
        saliency=eval_figure(
            "classifier",
            "saliency",
            "classifier_saliency",
            "3. Classification",
            "Saliency",
        ),
        svg=[f"{RESULTS}/figures/classifier/{n}.svg" for n in CLASSIFIER_FIGURES],
    log:
        f"{RESULTS}/logs/evaluate_classifier.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_classifier.tsv"
    conda:
        "../../envs/interface4d.yaml"
    threads: 2
    params:
        evaluation=evaluation_params(),
        training=training_params("classifier"),
        code=EVAL_CODE,
        metrics_dir=lambda w, output: Path(output.metrics).parent,
        figures_dir=lambda w, output: Path(output.training).parent,
    shell:
        "interface4d evaluate classify --model {input.model} --dataset {input.dataset}"
        " --manifest {input.manifest} --history {input.history}"
        " --training-json {params.training:q} --evaluation-json {params.evaluation:q}"
        " --metrics-dir {params.metrics_dir} --figures-dir {params.figures_dir}"
        " --threads {threads} > {log} 2>&1"


rule evaluate_regressors:
    input:
        models=regression_inputs("models"),
        histories=regression_inputs("histories"),
        datasets=regression_inputs("datasets"),
        manifests=regression_inputs("manifests"),
    output:
        metrics=f"{RESULTS}/metrics/regression.json",
        predictions=f"{RESULTS}/metrics/regression_predictions.csv",
        dose=f"{RESULTS}/metrics/regression_dose.csv",
        training=eval_figure(
            "regression",
            "training",
            "regression_training",
            "4. Step position",
            "Training",
        ),
        scatter=eval_figure(
            "regression",
            "predicted_vs_true",
            "regression_scatter",
            "4. Step position",
            "Validation",
        ),
        examples=eval_figure(
            "regression",
            "examples",
            "regression_examples",
            "4. Step position",
            "Examples",
        ),
        error=eval_figure(
            "regression",
            "error_vs_thickness",
            "regression_error",
            "4. Step position",
            "Validation",
        ),
        transfer_scatter=eval_figure(
            "regression",
            "transfer_predicted_vs_true",
            "transfer_scatter",
            "5. Transferability",
        ),
        transfer_error=eval_figure(
            "regression", "transfer_error", "transfer_error", "5. Transferability"
        ),
        svg=[f"{RESULTS}/figures/regression/{n}.svg" for n in REGRESSION_FIGURES],
    log:
        f"{RESULTS}/logs/evaluate_regressors.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_regressors.tsv"
    # like the regressors: it runs while the last simulations do
    priority: 1
    conda:
        "../../envs/interface4d.yaml"
    threads: 2
    params:
        thicknesses=regress_thicknesses(),
        evaluation=evaluation_params(),
        training=training_params("regressor"),
        code=EVAL_CODE,
        metrics_dir=lambda w, output: Path(output.metrics).parent,
        figures_dir=lambda w, output: Path(output.training).parent,
    shell:
        "interface4d evaluate regress --thicknesses {params.thicknesses}"
        " --models {input.models} --histories {input.histories}"
        " --datasets {input.datasets} --manifests {input.manifests}"
        " --training-json {params.training:q} --evaluation-json {params.evaluation:q}"
        " --metrics-dir {params.metrics_dir} --figures-dir {params.figures_dir}"
        " --threads {threads} > {log} 2>&1"


rule summarise:
    input:
        unpack(summary_inputs),
    output:
        headline=f"{RESULTS}/metrics/headline.json",
        figure=report(
            f"{RESULTS}/figures/headline.png",
            caption="../report/headline_figure.rst",
            category="0. Headline numbers",
        ),
        figure_svg=f"{RESULTS}/figures/headline.svg",
        table=report(
            f"{RESULTS}/metrics/headline.csv",
            caption="../report/headline.rst",
            category="0. Headline numbers",
        ),
        dose_table=report(
            f"{RESULTS}/metrics/dose_study.csv",
            caption="../report/dose_table.rst",
            category="6. Dose study",
        ),
        dose_figure=report(
            f"{RESULTS}/figures/dose/dose_study.png",
            caption="../report/dose_study.rst",
            category="6. Dose study",
        ),
        dose_svg=f"{RESULTS}/figures/dose/dose_study.svg",
        detectability=report(
            f"{RESULTS}/metrics/detectability.csv",
            caption="../report/detectability_table.rst",
            category="4. Step position",
            subcategory="Detectability",
        ),
        detectability_figure=report(
            f"{RESULTS}/figures/detectability.png",
            caption="../report/detectability.rst",
            category="4. Step position",
            subcategory="Detectability",
        ),
        detectability_svg=f"{RESULTS}/figures/detectability.svg",
    log:
        f"{RESULTS}/logs/summarise.log",
    conda:
        "../../envs/interface4d.yaml"
    params:
        regression=lambda w, input: (
            f"--regression {input.regression}"
            f" --regression-predictions {input.regression_predictions}"
            if "regression" in input.keys()
            else ""
        ),
        campaign=config["campaign"],
        metrics_dir=lambda w, output: Path(output.headline).parent,
    shell:
        "interface4d evaluate summary --classifier {input.classifier} {params.regression}"
        " --classifier-predictions {input.classifier_predictions}"
        " --out-dir {params.metrics_dir} --figure {output.dose_figure}"
        " --headline-figure {output.figure} --detectability-figure"
        " {output.detectability_figure} --campaign {params.campaign:q} > {log} 2>&1"


# What interface4d predict needs to apply the networks to a user's own 4D-STEM data.
rule model_card:
    input:
        classify=f"{RESULTS}/datasets/classify.h5",
        classifier=f"{RESULTS}/models/classifier.keras",
        datasets=regression_inputs("datasets"),
        models=regression_inputs("models"),
    output:
        f"{RESULTS}/models/model_card.json",
    log:
        f"{RESULTS}/logs/model_card.log",
    conda:
        "../../envs/interface4d.yaml"
    params:
        config=card_params(),
        regress=card_regress_args,
    shell:
        "interface4d model-card --config-json {params.config:q}"
        " --classify-dataset {input.classify} --classifier {input.classifier}"
        " {params.regress} -o {output} 2> {log}"
