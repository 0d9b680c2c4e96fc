# interface4d: deep learning of buried LAO/STO interface structure from simulated 4D-STEM
# (after Oxley et al. 2020, MLST 1 04LT01, Fig. 1):
#
#   structures  ->  forward model (4D-STEM)  ->  descriptors  ->  network  ->  evaluation
#
# config.yaml is the embedded CPU demo; profiles/*/campaign.yaml are paper-scale GPU campaigns.


from snakemake.utils import min_version

min_version("9.0")


# The demo campaign, unless a campaign file is given (--configfile or a profile's configfile):
# then that file alone defines the campaign, with no demo keys merged into it.
if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
# 1. structures: LAO/STO cross-sections, buried step or Ti/Al intermixing (ASE)
include: "workflow/rules/structures.smk"
# 2. forward model: frozen-phonon multislice 4D-STEM per cell (abTEM)
include: "workflow/rules/simulate.smk"
# 3. descriptors: cropped CBED line stacks and unit-cell averages, split by structure
include: "workflow/rules/reduce.smk"
# 4. network: 3D CNN classifier (all thicknesses) and step-depth regressors (per thickness)
include: "workflow/rules/train.smk"
# 5. evaluation: accuracy, saliency, error vs thickness, transferability, dose (Figs. 3-5)
include: "workflow/rules/evaluate.smk"


# Light rules that run on the submit host, not as cluster jobs.
localrules:
    all,
    draw_structures,
    plot_scan,
    summarise,
    model_card,


rule all:
    default_target: True
    input:
        # every cell's simulation, through the reduced blocks (listing the 14,000 simulations
        # here as well would give Snakemake each of them twice to plan)
        reduced=reduced_blocks(BLOCKS),
        figures=figure_outputs(),
        datasets=dataset_outputs(),
        models=model_outputs(),
        evaluation=evaluation_outputs(),
