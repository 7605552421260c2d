// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

/// @title BN254 (alt_bn128) helpers for the Newton Lens devnet.
/// @notice Same encodings and algorithms as EigenLayer middleware's BN254 library, written here:
///         G2 limbs are stored imaginary part first (X = [X_imag, X_real]) which is the order the
///         EIP-197 pairing precompile expects; hashToG1 is try-and-increment with y = beta^((p+1)/4).
///         All curve arithmetic goes through the precompiles 0x06 (add), 0x07 (mul), 0x08 (pairing).
library BN254 {
    uint256 internal constant FP_MODULUS = 21888242871839275222246405745257275088696311157297823662689037894645226208583;
    uint256 internal constant FR_MODULUS = 21888242871839275222246405745257275088548364400416034343698204186575808495617;

    struct G1Point {
        uint256 X;
        uint256 Y;
    }

    /// @dev X = [X_imag, X_real], Y = [Y_imag, Y_real] (EigenLayer convention).
    struct G2Point {
        uint256[2] X;
        uint256[2] Y;
    }

    error BN254AddFailed();
    error BN254MulFailed();
    error BN254PairingFailed();
    error BN254ExpModFailed();

    // Generator of G2 (imaginary limb first), and its negation.
    uint256 internal constant G2x1 = 11559732032986387107991004021392285783925812861821192530917403151452391805634;
    uint256 internal constant G2x0 = 10857046999023057135944570762232829481370756359578518086990519993285655852781;
    uint256 internal constant G2y1 = 4082367875863433681332203403145435568316851327593401208105741076214120093531;
    uint256 internal constant G2y0 = 8495653923123431417604973247489272438418190587263600148770280649306958101930;
    uint256 internal constant nG2y1 = 17805874995975841540914202342111839520379459829704422454583296818431106115052;
    uint256 internal constant nG2y0 = 13392588948715843804641432497768002650278120570034223513918757245338268106653;

    function generatorG1() internal pure returns (G1Point memory) {
        return G1Point(1, 2);
    }

    function negGeneratorG2() internal pure returns (G2Point memory) {
        return G2Point([G2x1, G2x0], [nG2y1, nG2y0]);
    }

    function negate(G1Point memory p) internal pure returns (G1Point memory) {
        if (p.X == 0 && p.Y == 0) return G1Point(0, 0);
        return G1Point(p.X, FP_MODULUS - (p.Y % FP_MODULUS));
    }

    function plus(G1Point memory p1, G1Point memory p2) internal view returns (G1Point memory r) {
        uint256[4] memory input = [p1.X, p1.Y, p2.X, p2.Y];
        bool ok;
        assembly {
            ok := staticcall(gas(), 0x06, input, 0x80, r, 0x40)
        }
        if (!ok) revert BN254AddFailed();
    }

    function scalarMul(G1Point memory p, uint256 s) internal view returns (G1Point memory r) {
        uint256[3] memory input = [p.X, p.Y, s];
        bool ok;
        assembly {
            ok := staticcall(gas(), 0x07, input, 0x60, r, 0x40)
        }
        if (!ok) revert BN254MulFailed();
    }

    /// @return success whether the precompile ran; valid whether e(a1,a2)*e(b1,b2) == 1.
    function safePairing(G1Point memory a1, G2Point memory a2, G1Point memory b1, G2Point memory b2)
        internal
        view
        returns (bool success, bool valid)
    {
        uint256[12] memory input = [
            a1.X, a1.Y, a2.X[0], a2.X[1], a2.Y[0], a2.Y[1],
            b1.X, b1.Y, b2.X[0], b2.X[1], b2.Y[0], b2.Y[1]
        ];
        uint256[1] memory out;
        assembly {
            success := staticcall(gas(), 0x08, input, 0x180, out, 0x20)
        }
        valid = success && out[0] == 1;
    }

    function hashG1(G1Point memory p) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(p.X, p.Y));
    }

    /// @notice Try-and-increment hash to G1, identical to EigenLayer BN254.hashToG1.
    function hashToG1(bytes32 h) internal view returns (G1Point memory) {
        uint256 x = uint256(h) % FP_MODULUS;
        while (true) {
            uint256 beta = addmod(mulmod(mulmod(x, x, FP_MODULUS), x, FP_MODULUS), 3, FP_MODULUS);
            uint256 y = expMod(beta, 0x0c19139cb84c680a6e14116da060561765e05aa45a1c72a34f082305b61f3f52, FP_MODULUS);
            if (beta == mulmod(y, y, FP_MODULUS)) {
                return G1Point(x, y);
            }
            x = addmod(x, 1, FP_MODULUS);
        }
        return G1Point(0, 0);
    }

    function expMod(uint256 base, uint256 e, uint256 m) internal view returns (uint256 r) {
        uint256[6] memory input = [uint256(32), 32, 32, base, e, m];
        uint256[1] memory out;
        bool ok;
        assembly {
            ok := staticcall(gas(), 0x05, input, 0xc0, out, 0x20)
        }
        if (!ok) revert BN254ExpModFailed();
        r = out[0];
    }
}
