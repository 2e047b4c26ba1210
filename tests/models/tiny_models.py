"""Architecture settings of the tiny test models (real classes, small dimensions)."""

# a SAM whose image encoder is the real ImageEncoderViT, 32 wide and 2 blocks deep, at 128 px (the
# released vit_b is 90M parameters at 1024 px)
TINY_SAM = dict(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,), image_size=128, patch_size=16,
                window_size=4)
