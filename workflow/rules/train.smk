# 4. Network: the paper's 3D CNN, data-parallel with Horovod. The launcher (horovodrun here,
# jsrun/srun on clusters) is a resource, so switching machines reruns nothing. Checkpoints live
# outside the outputs (Snakemake never deletes them) and a rerun resumes from the last epoch.


rule train_classifier:
    input:
        f"{RESULTS}/datasets/classify.h5",
    output:
        model=f"{RESULTS}/models/classifier.keras",
        history=f"{RESULTS}/models/classifier_history.csv",
        provenance=f"{RESULTS}/models/classifier_provenance.json",
    log:
        f"{RESULTS}/logs/train_classifier.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_classifier.tsv"
    # ready last (it reads every cell) and the widest job: it starts before any other waiting job
    priority: 2
    conda:
        "../../envs/interface4d.yaml"
    threads: network_ranks("classifier")
    resources:
        launcher=launcher,
    params:
        training=training_params("classifier"),
        code=TRAIN_CODE,
        checkpoints=f"{RESULTS}/checkpoints/classifier",
    shell:
        "{resources.launcher} interface4d train --task classify --dataset {input}"
        " --training-json {params.training:q} --ranks {threads} --model-out {output.model}"
        " --history-out {output.history} --provenance-out {output.provenance}"
        " --checkpoint-dir {params.checkpoints} --threads 1 > {log} 2>&1"


rule train_regressor:
    input:
        f"{RESULTS}/datasets/regress_t{{thickness}}.h5",
    output:
        model=f"{RESULTS}/models/regressor_t{{thickness}}.keras",
        history=f"{RESULTS}/models/regressor_t{{thickness}}_history.csv",
        provenance=f"{RESULTS}/models/regressor_t{{thickness}}_provenance.json",
    log:
        f"{RESULTS}/logs/train_regressor/t{{thickness}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_regressor/t{{thickness}}.tsv"
    # ready once the step cells are: it fills a free core before the remaining simulations
    priority: 1
    conda:
        "../../envs/interface4d.yaml"
    threads: network_ranks("regressor")
    resources:
        launcher=launcher,
    params:
        training=regressor_training,
        code=TRAIN_CODE,
        checkpoints=lambda w: f"{RESULTS}/checkpoints/regressor_t{w.thickness}",
    shell:
        "{resources.launcher} interface4d train --task regress --dataset {input}"
        " --training-json {params.training:q} --ranks {threads} --model-out {output.model}"
        " --history-out {output.history} --provenance-out {output.provenance}"
        " --checkpoint-dir {params.checkpoints} --threads 1 > {log} 2>&1"
