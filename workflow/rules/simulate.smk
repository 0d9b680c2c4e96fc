# 2. Forward model: one abTEM frozen-phonon 4D-STEM simulation per cell.
# The job's only physics input is its settings dict (one param, so any change is seen);
# device, threads, batching and the launcher (a GPU per cell when simulating on GPUs) are
# resources, so moving laptop <-> cluster reruns nothing. Every resource here is a constant:
# Snakemake evaluates a callable (or a profile's string) once per job, 14,000 times at scale.
# What the file keeps is the cell's `stored` setting (simulation.store); with `store: none` it
# is a temp() output, removed once its block is reduced (and the scan figure drawn).


rule simulate:
    output:
        sim_output(f"{RESULTS}/sims/{{cell}}.h5"),
    log:
        f"{RESULTS}/logs/simulate/{{cell}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/simulate/{{cell}}.tsv"
    conda:
        "../../envs/interface4d.yaml"
    threads: config["simulation"]["threads"]
    resources:
        mem_mb=sim_mem_mb(),
        runtime=60,
        sim_device=config["simulation"]["device"],
        max_batch=config["simulation"]["max_batch"],
        launcher=sim_launcher(),
        tmpdir=SYSTEM_TMPDIR,
        fftw_wisdom=FFTW_WISDOM,
    params:
        settings=cell_params,
    shell:
        "{resources.launcher} interface4d simulate --settings {params.settings:q}"
        " --device {resources.sim_device}"
        " --threads {threads} --max-batch {resources.max_batch}"
        " --fftw-wisdom {resources.fftw_wisdom:q} -o {output} 2> {log}"


rule plot_scan:
    input:
        showcase_sim,
    output:
        report(
            f"{RESULTS}/figures/scan/t{{thickness}}.png",
            caption="../report/scan.rst",
            category="2. Forward model",
            subcategory="{thickness} A",
        ),
    log:
        f"{RESULTS}/logs/plot_scan/t{{thickness}}.log",
    conda:
        "../../envs/interface4d.yaml"
    shell:
        "interface4d plot-scan {input} -o {output} 2> {log}"
