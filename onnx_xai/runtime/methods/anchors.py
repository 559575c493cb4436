"""The image attribution methods of the libraries people already use, and where each is here.

Captum (its attribution methods that apply to an image model's input or a layer's activation),
pytorch-grad-cam and OpenVINO-XAI: each row names the method here that computes it (the method
table says how closely), or says why there is none. :func:`onnx_xai.runtime.methods.anchor_table`
makes the README's table of it.
"""

from __future__ import annotations

ANCHORS: list[tuple[str, str, str]] = [
    ("Captum", "Saliency", "gradient"),
    ("Captum", "InputXGradient", "input_x_gradient"),
    ("Captum", "IntegratedGradients", "integrated_gradients"),
    ("Captum", "GradientShap", "gradient_shap"),
    ("Captum", "GuidedBackprop", "guided_backprop"),
    ("Captum", "Deconvolution", "deconvolution"),
    ("Captum", "GuidedGradCam", "guided_gradcam"),
    ("Captum", "LayerGradCam", "gradcam"),
    ("Captum", "NoiseTunnel (SmoothGrad, SmoothGrad², VarGrad)", "smoothgrad"),
    ("Captum", "LRP", "lrp"),
    ("Captum", "Occlusion", "occlusion"),
    ("Captum", "FeatureAblation (a feature mask)", "occlusion"),
    ("Captum", "Lime", "lime"),
    ("Captum", "KernelShap", "kernel_shap"),
    ("Captum", "DeepLift", "deeplift"),
    ("Captum", "DeepLiftShap", "deeplift_shap"),
    ("Captum", "ShapleyValueSampling", "not yet (kernel_shap estimates the same values)"),
    ("Captum", "LayerConductance, InternalInfluence, NeuronConductance", "not yet"),
    ("pytorch-grad-cam", "GradCAM", "gradcam"),
    ("pytorch-grad-cam", "GradCAMPlusPlus", "gradcam_pp"),
    ("pytorch-grad-cam", "XGradCAM", "xgradcam"),
    ("pytorch-grad-cam", "HiResCAM", "hirescam"),
    ("pytorch-grad-cam", "LayerCAM", "layercam"),
    ("pytorch-grad-cam", "EigenCAM", "eigencam"),
    ("pytorch-grad-cam", "EigenGradCAM", "eigengradcam"),
    ("pytorch-grad-cam", "GradCAMElementWise", "gradcam_elementwise"),
    ("pytorch-grad-cam", "ScoreCAM", "scorecam"),
    ("pytorch-grad-cam", "AblationCAM", "ablationcam"),
    ("pytorch-grad-cam", "KPCA_CAM", "kpca_cam"),
    ("pytorch-grad-cam", "FEM", "fem"),
    ("pytorch-grad-cam", "FinerCAM", "finer_cam"),
    ("pytorch-grad-cam", "GuidedBackpropReLUModel", "guided_backprop"),
    ("pytorch-grad-cam", "FullGrad", "fullgrad"),
    ("pytorch-grad-cam", "ShapleyCAM", "not yet: needs a Hessian-vector product"),
    ("OpenVINO-XAI", "ReciproCAM", "reciprocam"),
    ("OpenVINO-XAI", "ViTReciproCAM", "reciprocam"),
    ("OpenVINO-XAI", "ActivationMap", "activation_map"),
    ("OpenVINO-XAI", "RISE", "rise"),
    ("OpenVINO-XAI", "AISE", "not yet (RISE and occlusion cover its black-box use)"),
]
